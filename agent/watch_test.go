package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// collect runs a watch and returns a function that waits for an event matching want.
func collect(t *testing.T, root string, recursive bool) (func(typ, path string) Reply, *fsWatch) {
	t.Helper()
	w, err := startWatch("t-"+root, root, recursive)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan Reply, 1024)
	go w.deliver(func(r Reply) error { events <- r; return nil })
	t.Cleanup(func() { w.stop("test over") })
	return func(typ, path string) Reply {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case r := <-events:
				if r["type"] == typ && r["path"] == path {
					return r
				}
			case <-deadline:
				t.Fatalf("no %s event for %s", typ, path)
			}
		}
	}, w
}

func TestWatchReportsCreateModifyMoveDelete(t *testing.T) {
	root := t.TempDir()
	next, _ := collect(t, root, false)
	f := filepath.Join(root, "a.txt")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	next("created", f)
	if err := os.WriteFile(f, []byte("yy"), 0o644); err != nil {
		t.Fatal(err)
	}
	next("modified", f)
	g := filepath.Join(root, "b.txt")
	if err := os.Rename(f, g); err != nil {
		t.Fatal(err)
	}
	if r := next("moved", g); r["fromPath"] != f || r["isDir"] != false {
		t.Fatalf("moved %v", r)
	}
	if err := os.Remove(g); err != nil {
		t.Fatal(err)
	}
	next("deleted", g)
}

func TestWatchRecursiveFollowsNewAndMovedDirectories(t *testing.T) {
	root := t.TempDir()
	next, _ := collect(t, root, true)
	sub := filepath.Join(root, "d")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := next("created", sub); r["isDir"] != true {
		t.Fatalf("created %v", r)
	}
	inner := filepath.Join(sub, "f")
	if err := os.WriteFile(inner, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	next("created", inner)
	moved := filepath.Join(root, "e")
	if err := os.Rename(sub, moved); err != nil {
		t.Fatal(err)
	}
	next("moved", moved)
	if err := os.Remove(filepath.Join(moved, "f")); err != nil {
		t.Fatal(err)
	}
	next("deleted", filepath.Join(moved, "f"))
}

func TestWatchWithoutRecursionIgnoresSubdirectories(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "d")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	next, _ := collect(t, root, false)
	if err := os.WriteFile(filepath.Join(sub, "hidden"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(root, "top")
	if err := os.WriteFile(top, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Events arrive in order: the top-level file's comes after the subdirectory's would have.
	next("created", top)
}

func TestWatchRefusesAFileAndEndsWhenTheDirectoryGoes(t *testing.T) {
	root := t.TempDir()
	f := filepath.Join(root, "f")
	_ = os.WriteFile(f, nil, 0o644)
	if _, err := startWatch("t-file", f, false); err == nil || err.(*OpError).Code != "NOT_A_DIRECTORY" {
		t.Fatalf("want NOT_A_DIRECTORY, got %v", err)
	}
	if _, err := startWatch("t-missing", filepath.Join(root, "nope"), false); err == nil || err.(*OpError).Code != "NOT_FOUND" {
		t.Fatalf("want NOT_FOUND, got %v", err)
	}
	dir := filepath.Join(root, "gone")
	_ = os.Mkdir(dir, 0o755)
	_, w := collect(t, dir, false)
	_ = os.Remove(dir)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end with its directory")
	}
}

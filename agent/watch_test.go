package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"
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

// inotifyEvent encodes one event as the kernel hands it to read(2).
func inotifyEvent(wd int32, mask, cookie uint32, name string) []byte {
	padded := (len(name)/16 + 1) * 16
	raw := syscall.InotifyEvent{Wd: wd, Mask: mask, Cookie: cookie, Len: uint32(padded)}
	out := make([]byte, syscall.SizeofInotifyEvent+padded)
	copy(out, (*[syscall.SizeofInotifyEvent]byte)(unsafe.Pointer(&raw))[:])
	copy(out[syscall.SizeofInotifyEvent:], name)
	return out
}

// A read can end between a rename's two halves (the kernel queues them one after the other);
// the halves are still one `moved`, and a half that stays alone is a move out of the tree.
func TestWatchPairsARenameSplitAcrossReads(t *testing.T) {
	root := t.TempDir()
	w := &fsWatch{
		root: root, recursive: true, dirs: map[int32]string{1: root, 2: filepath.Join(root, "new")},
		moves: map[uint32]pendingMove{}, queue: make(chan fsEvent, 16), overflow: make(chan struct{}, 1),
	}
	dirMove := uint32(syscall.IN_ISDIR)
	w.handle(inotifyEvent(1, syscall.IN_MOVED_FROM|dirMove, 7, "new"))
	w.expireMoves(time.Now())
	if len(w.queue) != 0 {
		t.Fatalf("the first half alone was reported: %v", <-w.queue)
	}
	w.handle(inotifyEvent(1, syscall.IN_MOVED_TO|dirMove, 7, "renamed"))
	e := <-w.queue
	if e.Type != "moved" || e.Path != filepath.Join(root, "renamed") || e.FromPath != filepath.Join(root, "new") || !e.IsDir {
		t.Fatalf("got %+v", e)
	}
	if w.dirs[2] != filepath.Join(root, "renamed") {
		t.Fatalf("the moved directory's watch is named %q", w.dirs[2])
	}

	w.handle(inotifyEvent(1, syscall.IN_MOVED_FROM, 9, "away"))
	w.expireMoves(time.Now())
	if len(w.queue) != 0 {
		t.Fatal("a move out was reported before its wait")
	}
	w.expireMoves(time.Now().Add(moveWait))
	if e := <-w.queue; e.Type != "deleted" || e.Path != filepath.Join(root, "away") {
		t.Fatalf("got %+v", e)
	}
}

// A move out of the watched tree is reported as deleted by the running watch, once its wait ends.
func TestWatchReportsAMoveOutAsDeleted(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	watched := filepath.Join(root, "w")
	if err := os.Mkdir(watched, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(watched, "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	next, _ := collect(t, watched, false)
	if err := os.Rename(f, filepath.Join(outside, "f")); err != nil {
		t.Fatal(err)
	}
	next("deleted", f)
}

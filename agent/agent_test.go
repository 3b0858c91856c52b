package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	data, err := encodeFrame(map[string]interface{}{"id": 7, "op": "hello"}, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(append(data, data...))
	for i := 0; i < 2; i++ {
		frame, err := readFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]interface{}
		if err := json.Unmarshal(frame.Header, &h); err != nil || h["op"] != "hello" {
			t.Fatalf("header %s: %v", frame.Header, err)
		}
		if string(frame.Payload) != "payload" {
			t.Fatalf("payload %q", frame.Payload)
		}
	}
	if _, err := readFrame(r); err != io.EOF {
		t.Fatalf("want EOF at a frame boundary, got %v", err)
	}
	if _, err := readFrame(bytes.NewReader(data[:10])); err != io.ErrUnexpectedEOF {
		t.Fatalf("want ErrUnexpectedEOF inside a frame, got %v", err)
	}
}

func TestMergeEnvReplacesAndAdds(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, map[string]string{"B": "3", "C": "4"})
	want := []string{"A=1", "B=3", "C=4"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v", got)
		}
	}
}

func TestCaptureKeepsTheLimitAndFlagsTheRest(t *testing.T) {
	c := &capture{limit: 4}
	_, _ = c.Write([]byte("ab"))
	_, _ = c.Write([]byte("cdef"))
	if c.buf.String() != "abcd" || !c.truncated {
		t.Fatalf("kept %q truncated=%v", c.buf.String(), c.truncated)
	}
}

func runExec(t *testing.T, args execArgs) (Reply, []byte) {
	t.Helper()
	header, _ := json.Marshal(args)
	conn := &Conn{closed: make(chan struct{})}
	reply, payload, err := opExec(conn, &Request{Op: "exec", header: header})
	if err != nil {
		t.Fatal(err)
	}
	return reply, payload
}

func TestExecOutputExitCodeAndTimeout(t *testing.T) {
	reply, payload := runExec(t, execArgs{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if reply["exitCode"] != 3 || string(payload) != "out\nerr\n" || reply["stdoutSize"] != 4 {
		t.Fatalf("reply %v payload %q", reply, payload)
	}
	reply, _ = runExec(t, execArgs{Argv: []string{"sh", "-c", "sleep 5"}, TimeoutMs: 100})
	if reply["timedOut"] != true || reply["exitCode"] != 137 {
		t.Fatalf("reply %v", reply)
	}
	reply, payload = runExec(t, execArgs{Argv: []string{"no-such-program-here"}})
	if reply["exitCode"] != 127 || len(payload) == 0 {
		t.Fatalf("reply %v payload %q", reply, payload)
	}
}

func TestExecLooksProgramsUpInTheGivenPath(t *testing.T) {
	dir := t.TempDir()
	script := dir + "/only-here"
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho found\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	reply, payload := runExec(t, execArgs{Argv: []string{"only-here"}, Env: map[string]string{"PATH": dir + ":/bin:/usr/bin"}})
	if reply["exitCode"] != 0 || string(payload) != "found\n" {
		t.Fatalf("reply %v payload %q", reply, payload)
	}
}

func TestContainerSoftFileLimitIsRead(t *testing.T) {
	path := t.TempDir() + "/limits"
	text := "Limit                     Soft Limit           Hard Limit           Units\n" +
		"Max open files            4096                 8192                 files\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if soft, ok := containerSoftFileLimit(path); !ok || soft != 4096 {
		t.Fatalf("soft %d ok %v", soft, ok)
	}
}

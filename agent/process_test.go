package main

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// testSession is a daemon connection over an in-memory pipe, read by the test.
type testSession struct {
	t      *testing.T
	client net.Conn
	conn   *Conn
}

func newTestSession(t *testing.T) *testSession {
	server, client := net.Pipe()
	c := &Conn{nc: server, closed: make(chan struct{})}
	go c.run()
	t.Cleanup(func() { client.Close(); c.close() })
	return &testSession{t: t, client: client, conn: c}
}

var nextID uint64 = 100

func (s *testSession) send(op string, args map[string]interface{}, payload []byte) uint64 {
	nextID++
	args["id"], args["op"] = nextID, op
	data, err := encodeFrame(args, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.client.Write(data); err != nil {
		s.t.Fatal(err)
	}
	return nextID
}

// call sends a request and reads frames until its reply (use it before any watch: events met
// on the way are dropped).
func (s *testSession) call(op string, args map[string]interface{}, payload []byte) map[string]interface{} {
	id := s.send(op, args, payload)
	for {
		h, _ := s.next()
		if h["id"] != nil && uint64(h["id"].(float64)) == id {
			return h
		}
	}
}

func (s *testSession) next() (map[string]interface{}, []byte) {
	_ = s.client.SetReadDeadline(time.Now().Add(10 * time.Second))
	frame, err := readFrame(s.client)
	if err != nil {
		s.t.Fatal(err)
	}
	var h map[string]interface{}
	if err := json.Unmarshal(frame.Header, &h); err != nil {
		s.t.Fatal(err)
	}
	return h, frame.Payload
}

// collect reads frames until the process's exit event: the output by stream, the seqs seen,
// the exit event, and the replies met on the way.
func (s *testSession) collect(process string, ack bool) (map[string]string, []uint64, map[string]interface{}) {
	out := map[string]string{}
	var seqs []uint64
	for {
		h, payload := s.next()
		if testing.Verbose() {
			s.t.Logf("frame %v %q", h, payload)
		}
		if h["process"] != process {
			continue
		}
		switch h["event"] {
		case "output":
			seq := uint64(h["seq"].(float64))
			seqs = append(seqs, seq)
			out[h["stream"].(string)] += string(payload)
			if ack {
				s.send("ack", map[string]interface{}{"process": process, "seq": seq}, nil)
			}
		case "exit":
			return out, seqs, h
		}
	}
}

func uniqueID(name string) string { return name + "-" + time.Now().Format("150405.000000000") }

func TestProcessPipesOutputAndExit(t *testing.T) {
	s := newTestSession(t)
	id := uniqueID("pipes")
	s.call("spawn", map[string]interface{}{"process": id, "argv": []string{"sh", "-c", "echo out; echo err >&2; exit 3"}}, nil)
	s.send("watch", map[string]interface{}{"process": id, "since": 0}, nil)
	out, seqs, exit := s.collect(id, false)
	if out["stdout"] != "out\n" || out["stderr"] != "err\n" {
		t.Fatalf("output %v", out)
	}
	if exit["exitCode"].(float64) != 3 || uint64(exit["lastSeq"].(float64)) != uint64(len(seqs)) {
		t.Fatalf("exit %v seqs %v", exit, seqs)
	}
}

func TestProcessTTYSizeStdinAndResize(t *testing.T) {
	s := newTestSession(t)
	id := uniqueID("tty")
	s.call("spawn", map[string]interface{}{
		"process": id, "argv": []string{"sh", "-c", "stty size; read line; echo got-$line; stty size"},
		"tty": true, "cols": 100, "rows": 30, "stdin": true,
	}, nil)
	s.send("watch", map[string]interface{}{"process": id, "since": 0}, nil)
	time.Sleep(200 * time.Millisecond)
	s.send("resize", map[string]interface{}{"process": id, "cols": 120, "rows": 40}, nil)
	s.send("stdin", map[string]interface{}{"process": id}, []byte("hello\n"))
	out, _, exit := s.collect(id, false)
	if !strings.Contains(out["pty"], "30 100") || !strings.Contains(out["pty"], "got-hello") || !strings.Contains(out["pty"], "40 120") {
		t.Fatalf("pty output %q", out["pty"])
	}
	if exit["exitCode"].(float64) != 0 {
		t.Fatalf("exit %v", exit)
	}
}

func TestProcessBackpressureLosesNothing(t *testing.T) {
	s := newTestSession(t)
	id := uniqueID("flood")
	s.call("spawn", map[string]interface{}{
		"process": id, "argv": []string{"sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done"},
		"bufferBytes": 256,
	}, nil)
	time.Sleep(300 * time.Millisecond)
	p, err := processes.get(id)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	held, ended := p.bufBytes, p.ended
	p.mu.Unlock()
	if ended || held > 256+chunkBytes {
		t.Fatalf("nothing acknowledged: the process must be held (buffer %d, ended %v)", held, ended)
	}
	s.send("watch", map[string]interface{}{"process": id, "since": 0}, nil)
	out, seqs, exit := s.collect(id, true)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("seq %d at %d", seq, i)
		}
	}
	lines := strings.Split(strings.TrimSpace(out["stdout"]), "\n")
	if len(lines) != 3000 || lines[2999] != "line-2999" || exit["exitCode"].(float64) != 0 {
		t.Fatalf("%d lines, exit %v", len(lines), exit)
	}
}

func TestProcessSignalAndMissingProgram(t *testing.T) {
	s := newTestSession(t)
	id := uniqueID("sleep")
	s.call("spawn", map[string]interface{}{"process": id, "argv": []string{"sleep", "30"}}, nil)
	s.send("watch", map[string]interface{}{"process": id, "since": 0}, nil)
	time.Sleep(100 * time.Millisecond)
	s.send("signal", map[string]interface{}{"process": id, "signal": "TERM"}, nil)
	_, _, exit := s.collect(id, false)
	if exit["signal"] != "TERM" || exit["exitCode"].(float64) != 143 {
		t.Fatalf("exit %v", exit)
	}
	missing := uniqueID("missing")
	s.call("spawn", map[string]interface{}{"process": missing, "argv": []string{"no-such-program-here"}}, nil)
	s.send("watch", map[string]interface{}{"process": missing, "since": 0}, nil)
	out, _, exit := s.collect(missing, false)
	if exit["exitCode"].(float64) != 127 || out["stderr"] == "" {
		t.Fatalf("exit %v output %v", exit, out)
	}
}

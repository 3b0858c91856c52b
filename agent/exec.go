package main

// exec: run a command to its end and answer with its exit code and output, each stream capped
// at `limit` bytes (the rest read and dropped). On `timeoutMs` the command's process group is
// killed (SIGKILL), which takes its descendants along unless they left the group.
//
// Reply header: exitCode, timedOut, stdoutSize, stdoutTruncated, stderrTruncated; payload:
// stdout then stderr.

import (
	"bytes"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// After the command exits, output still in flight is read for this long at most: a background
// child that keeps the pipes open does not hold the reply back.
const execDrainGrace = 500 * time.Millisecond

type execArgs struct {
	Argv      []string          `json:"argv"`
	Env       map[string]string `json:"env"`
	Workdir   string            `json:"workdir"`
	TimeoutMs int64             `json:"timeoutMs"`
	Limit     int               `json:"limit"`
}

func init() { register("exec", opExec) }

// capture keeps up to limit bytes of a stream and counts what it dropped.
type capture struct {
	limit     int
	buf       bytes.Buffer
	truncated bool
}

func (c *capture) Write(p []byte) (int, error) {
	room := c.limit - c.buf.Len()
	if len(p) > room {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

func opExec(c *Conn, r *Request) (Reply, []byte, error) {
	var args execArgs
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	if args.Limit <= 0 {
		args.Limit = 1 << 20
	}
	cmd, err := newCommand(args.Argv, args.Env, args.Workdir)
	if err != nil {
		return nil, nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, stderr := &capture{limit: args.Limit}, &capture{limit: args.Limit}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	started := time.Now()
	startErr := cmd.Start()
	outW.Close()
	errW.Close()
	if startErr != nil {
		outR.Close()
		errR.Close()
		code, message := startError(startErr)
		return execReply(code, false, stdout, &capture{limit: args.Limit, buf: *bytes.NewBufferString(message)}, started)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	for _, pair := range []struct {
		r *os.File
		w io.Writer
	}{{outR, stdout}, {errR, stderr}} {
		go func(r *os.File, w io.Writer) {
			defer readers.Done()
			_, _ = io.Copy(w, r)
		}(pair.r, pair.w)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	timedOut := false
	var timeout <-chan time.Time
	if args.TimeoutMs > 0 {
		timer := time.NewTimer(time.Duration(args.TimeoutMs) * time.Millisecond)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-exited:
	case <-timeout:
		timedOut = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	case <-c.closed:
		// The session that asked is gone: nobody will read the answer.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(execDrainGrace):
		// Closing the read ends ends the copies (a descendant still holds the write ends).
		outR.Close()
		errR.Close()
		<-drained
	}
	outR.Close()
	errR.Close()
	code, _ := exitStatus(cmd.ProcessState)
	return execReply(code, timedOut, stdout, stderr, started)
}

func execReply(code int, timedOut bool, stdout, stderr *capture, started time.Time) (Reply, []byte, error) {
	payload := make([]byte, 0, stdout.buf.Len()+stderr.buf.Len())
	payload = append(payload, stdout.buf.Bytes()...)
	payload = append(payload, stderr.buf.Bytes()...)
	return Reply{
		"exitCode":        code,
		"timedOut":        timedOut,
		"stdoutSize":      stdout.buf.Len(),
		"stdoutTruncated": stdout.truncated,
		"stderrTruncated": stderr.truncated,
		"durationMs":      time.Since(started).Milliseconds(),
	}, payload, nil
}

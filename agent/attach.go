package main

// attach: the end of the orchestrator's persistent `docker exec`. Its stdin and stdout are
// bridged to the daemon's socket, byte for byte; when no daemon listens it starts one, detached
// in a session of its own (so it outlives this exec and keeps the background processes it
// owns), and connects again.

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

const daemonStartTimeout = 10 * time.Second

func attach(name string) error {
	conn, err := net.Dial("unix", name)
	if err != nil {
		if err := startDaemon(); err != nil {
			return err
		}
		deadline := time.Now().Add(daemonStartTimeout)
		for {
			conn, err = net.Dial("unix", name)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			return err
		}
	}
	uc := conn.(*net.UnixConn)
	go func() {
		_, _ = io.Copy(uc, os.Stdin)
		// The orchestrator went away (or closed its end): the daemon sees the end of the stream
		// and closes its side, which ends the copy below.
		_ = uc.CloseWrite()
	}()
	_, err = io.Copy(os.Stdout, uc)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func startDaemon() error {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(self, "serve")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.Dir = "" // the container's working directory, inherited: commands start there
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	// Not waited for: it outlives this process (a second daemon started by a concurrent attach
	// finds the name taken and exits).
	return cmd.Process.Release()
}

// Command sbx-agent runs inside every sandbox container (mounted read-only at /.sbx).
//
//	sbx-agent serve    the daemon: listens on the abstract unix socket @sbx-agent and owns
//	                   the commands and background processes it starts
//	sbx-agent attach   bridges stdin/stdout to the daemon (started detached when none
//	                   listens); the orchestrator keeps one of these per sandbox, as a
//	                   persistent `docker exec`
//	sbx-agent version  prints the protocol version
//	sbx-agent hold     does nothing until SIGTERM or SIGINT: the process of a network
//	                   holder, the container whose network namespace a sandbox joins
//	                   (see docs/network-holders.md)
//
// It uses only the Go standard library and opens no TCP or UDP port: see docs/agent.md.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// ProtocolVersion changes when a frame or an operation changes incompatibly.
const ProtocolVersion = 1

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sbx-agent serve|attach|version|hold")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		restoreFileLimit()
		if err := serve(socketName); err != nil {
			fmt.Fprintln(os.Stderr, "sbx-agent serve:", err)
			os.Exit(1)
		}
	case "attach":
		if err := attach(socketName); err != nil {
			fmt.Fprintln(os.Stderr, "sbx-agent attach:", err)
			os.Exit(1)
		}
	case "version":
		fmt.Println(ProtocolVersion)
	case "hold":
		hold()
	default:
		fmt.Fprintln(os.Stderr, "usage: sbx-agent serve|attach|version|hold")
		os.Exit(2)
	}
}

// hold waits for a signal to end. As PID 1 of its container it would otherwise ignore the
// SIGTERM of `docker stop` (the kernel gives PID 1 no default handlers) and wait out the grace.
func hold() {
	ends := make(chan os.Signal, 1)
	signal.Notify(ends, syscall.SIGTERM, syscall.SIGINT)
	<-ends
}

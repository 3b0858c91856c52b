// Command sbx-agent runs inside every sandbox container (mounted read-only at /.sbx).
//
//	sbx-agent serve    the daemon: listens on the abstract unix socket @sbx-agent and owns
//	                   the commands and background processes it starts
//	sbx-agent attach   bridges stdin/stdout to the daemon (started detached when none
//	                   listens); the orchestrator keeps one of these per sandbox, as a
//	                   persistent `docker exec`
//	sbx-agent version  prints the protocol version
//
// It uses only the Go standard library and opens no TCP or UDP port: see docs/agent.md.
package main

import (
	"fmt"
	"os"
)

// ProtocolVersion changes when a frame or an operation changes incompatibly.
const ProtocolVersion = 1

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sbx-agent serve|attach|version")
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
	default:
		fmt.Fprintln(os.Stderr, "usage: sbx-agent serve|attach|version")
		os.Exit(2)
	}
}

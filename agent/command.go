package main

// What exec and spawn share: turning argv, env and workdir into an *exec.Cmd, and exit codes.

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// newCommand is argv run with the daemon's environment (the container's) plus env, in workdir
// (the container's working directory when empty). It does not search PATH itself when argv[0]
// holds a slash, as a shell would not.
func newCommand(argv []string, env map[string]string, workdir string) (*exec.Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, badRequest("the command must not be empty")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if path, ok := env["PATH"]; ok && !strings.Contains(argv[0], "/") {
		// The program is looked up in the PATH the command is given, as Docker's exec does.
		if found := lookPathIn(argv[0], path); found != "" {
			cmd.Path = found
			cmd.Err = nil
		}
	}
	cmd.Env = mergeEnv(os.Environ(), env)
	cmd.Dir = workdir
	return cmd, nil
}

// lookPathIn is the first executable file called name in the directories of path, or "".
func lookPathIn(name, path string) string {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, name)
		if info, err := os.Stat(candidate); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return candidate
		}
	}
	return ""
}

// mergeEnv is base with the variables of extra set (replacing any of the same name).
func mergeEnv(base []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		name := kv
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				name = kv[:i]
				break
			}
		}
		if _, replaced := extra[name]; !replaced {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+extra[k])
	}
	return out
}

// exitStatus is (exit code, signal name) of a finished process: a process killed by a signal
// has the shell's code 128+n.
func exitStatus(state *os.ProcessState) (int, string) {
	if state == nil {
		return -1, ""
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), signalName(ws.Signal())
	}
	return state.ExitCode(), ""
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGTERM: "TERM", syscall.SIGKILL: "KILL", syscall.SIGINT: "INT", syscall.SIGHUP: "HUP",
	syscall.SIGQUIT: "QUIT", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2", syscall.SIGPIPE: "PIPE",
	syscall.SIGSEGV: "SEGV", syscall.SIGABRT: "ABRT", syscall.SIGALRM: "ALRM",
}

func signalName(s syscall.Signal) string {
	if name, ok := signalNames[s]; ok {
		return name
	}
	return s.String()
}

// parseSignal is the signal of a name the API accepts ("TERM", "KILL", ...).
func parseSignal(name string) (syscall.Signal, bool) {
	for s, n := range signalNames {
		if n == name {
			return s, true
		}
	}
	return 0, false
}

// startError is the exit code and message of a command that could not start: 127 when the
// program was not found, 126 when it could not be run (as a shell reports them).
func startError(err error) (int, string) {
	if os.IsNotExist(err) || err == exec.ErrNotFound {
		return 127, err.Error() + "\n"
	}
	var ee *exec.Error
	if e, ok := err.(*exec.Error); ok {
		ee = e
		if ee.Err == exec.ErrNotFound {
			return 127, err.Error() + "\n"
		}
	}
	return 126, err.Error() + "\n"
}

package main

// Go (1.19+) raises its own soft limit of open files to the hard limit at start-up, and the
// commands the daemon starts would inherit the raised limit. The container's own limit is the
// one its init process (PID 1) has: the daemon takes that soft limit back before it starts
// anything, so commands see the sandbox's ulimits, as with a Docker exec.

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func restoreFileLimit() {
	soft, ok := containerSoftFileLimit("/proc/1/limits")
	if !ok {
		return
	}
	var current syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &current); err != nil || soft >= current.Cur {
		return
	}
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: soft, Max: current.Max})
}

// containerSoftFileLimit is the soft "Max open files" of a /proc/<pid>/limits file.
func containerSoftFileLimit(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := scanner.Text()
		if !strings.HasPrefix(line, "Max open files") {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, "Max open files"))
		if len(fields) == 0 {
			return 0, false
		}
		soft, err := strconv.ParseUint(fields[0], 10, 64)
		return soft, err == nil
	}
	return 0, false
}

package main

// Pseudo-terminals without cgo or a libc: /dev/ptmx opened, unlocked (TIOCSPTLCK), its number
// read (TIOCGPTN), the peer /dev/pts/<n> opened, and the window size set (TIOCSWINSZ).

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

type winsize struct {
	Rows, Cols, X, Y uint16
}

// ioctl on a file without File.Fd, which would switch it to blocking mode (and so lose read
// deadlines and the poller).
func ioctl(f *os.File, request uintptr, arg unsafe.Pointer) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var callErr error
	err = raw.Control(func(fd uintptr) {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, request, uintptr(arg)); errno != 0 {
			callErr = errno
		}
	})
	if err != nil {
		return err
	}
	return callErr
}

// openPTY is a new pseudo-terminal's controller side and the path of its terminal side.
func openPTY() (*os.File, string, error) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", err
	}
	unlock := int32(0)
	if err := ioctl(ptmx, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		ptmx.Close()
		return nil, "", fmt.Errorf("unlock pty: %w", err)
	}
	var n uint32
	if err := ioctl(ptmx, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		ptmx.Close()
		return nil, "", fmt.Errorf("pty number: %w", err)
	}
	return ptmx, fmt.Sprintf("/dev/pts/%d", n), nil
}

func setWinsize(f *os.File, cols, rows int) error {
	ws := winsize{Rows: uint16(rows), Cols: uint16(cols)}
	return ioctl(f, syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
}

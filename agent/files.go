package main

// File operations of the sandbox, done by the agent in its own root (so symlinks and `..`
// resolve as the sandbox sees them, the same under runc and gVisor), without a shell or a Docker
// exec per operation. Reads are pulled in pieces (`fread` with an offset and a length, at most
// maxReadPiece a request) and writes pushed in pieces (`fwopen`, `fwrite` per chunk, `fwcommit`
// or `fwabort`), so no operation holds a whole file and the orchestrator's pace is the flow
// control. A write goes to a temporary name beside its target and is renamed over it only once
// complete; any failure removes it. Writes under /.sbx (the platform's, read-only) are refused
// after resolving symlinks.

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

const (
	platformDir  = "/.sbx"
	maxReadPiece = 4 << 20
)

type fileArgs struct {
	Path      string `json:"path"`
	To        string `json:"to"`
	Follow    bool   `json:"follow"`
	Parents   bool   `json:"parents"`
	Recursive bool   `json:"recursive"`
	Overwrite bool   `json:"overwrite"`
	Offset    int64  `json:"offset"`
	Length    int64  `json:"length"`
	Temp      string `json:"temp"`
	Mode      *int   `json:"mode"`
	Size      int64  `json:"size"`
}

// fileError maps an OS error to the contract's code.
func fileError(err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &OpError{Code: "NOT_FOUND", Message: "No such file or directory."}
	case errors.As(err, &errno) && errno == syscall.ENOTDIR:
		return &OpError{Code: "NOT_A_DIRECTORY", Message: "A path component is not a directory."}
	case errors.As(err, &errno) && errno == syscall.EISDIR:
		return &OpError{Code: "IS_A_DIRECTORY", Message: "The path is a directory."}
	case errors.As(err, &errno) && (errno == syscall.ENOSPC || errno == syscall.EDQUOT):
		return &OpError{Code: "STORAGE_FULL", Message: "The sandbox's disk or volume is full."}
	case errors.As(err, &errno) && errno == syscall.ENOTEMPTY:
		return &OpError{Code: "CONFLICT", Message: "The directory is not empty (pass recursive=true)."}
	case errors.Is(err, fs.ErrExist):
		return &OpError{Code: "CONFLICT", Message: "The path exists already."}
	case errors.As(err, &errno) && (errno == syscall.EACCES || errno == syscall.EPERM || errno == syscall.EROFS):
		return &OpError{Code: "CONFLICT", Message: err.Error()}
	}
	return &OpError{Code: "VALIDATION_ERROR", Message: err.Error()}
}

func entryOf(path string, follow bool) (Reply, error) {
	var st syscall.Stat_t
	var err error
	if follow {
		err = syscall.Stat(path, &st)
	} else {
		err = syscall.Lstat(path, &st)
	}
	if err != nil {
		return nil, fileError(&fs.PathError{Op: "stat", Path: path, Err: err})
	}
	return Reply{"path": path, "mode": st.Mode, "size": st.Size, "mtime": st.Mtim.Sec}, nil
}

// guard refuses a change whose place resolves into the platform's directory: the deepest
// existing ancestor of path, symlinks resolved in the sandbox's root.
func guard(path string) error {
	for p := path; ; p = filepath.Dir(p) {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			if resolved == platformDir || strings.HasPrefix(resolved, platformDir+"/") {
				return badRequest("%s belongs to the platform and is read-only.", platformDir)
			}
			return nil
		}
		if p == "/" {
			return nil
		}
	}
}

func isDir(path string) bool {
	info, err := os.Lstat(path)
	return err == nil && info.IsDir()
}

func fileOp(name string, fn func(a *fileArgs, payload []byte) (Reply, []byte, error)) {
	register(name, func(c *Conn, r *Request) (Reply, []byte, error) {
		var a fileArgs
		if err := r.Decode(&a); err != nil {
			return nil, nil, err
		}
		if !filepath.IsAbs(a.Path) {
			return nil, nil, badRequest("The path must be absolute (start with /).")
		}
		return fn(&a, r.Payload)
	})
}

func init() {
	fileOp("fstat", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		e, err := entryOf(a.Path, a.Follow)
		return Reply{"entry": e}, nil, err
	})
	fileOp("flist", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		names, err := func() ([]string, error) {
			d, err := os.Open(a.Path)
			if err != nil {
				return nil, err
			}
			defer d.Close()
			return d.Readdirnames(-1)
		}()
		if err != nil {
			return nil, nil, fileError(err)
		}
		sort.Strings(names)
		entries := make([]Reply, 0, len(names))
		for _, n := range names {
			if e, err := entryOf(filepath.Join(a.Path, n), false); err == nil {
				entries = append(entries, e)
			}
		}
		return Reply{"entries": entries}, nil, nil
	})
	fileOp("fmkdir", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		if _, err := os.Lstat(a.Path); err == nil {
			if a.Parents && isDir(a.Path) {
				e, err := entryOf(a.Path, false)
				return Reply{"entry": e}, nil, err
			}
			return nil, nil, fileError(fs.ErrExist)
		}
		if err := guard(a.Path); err != nil {
			return nil, nil, err
		}
		var err error
		if a.Parents {
			err = os.MkdirAll(a.Path, 0o755)
		} else {
			err = os.Mkdir(a.Path, 0o755)
		}
		if err != nil {
			return nil, nil, fileError(err)
		}
		e, err := entryOf(a.Path, false)
		return Reply{"entry": e}, nil, err
	})
	fileOp("fdelete", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		if _, err := os.Lstat(a.Path); err != nil {
			return nil, nil, fileError(err)
		}
		if err := guard(filepath.Dir(a.Path)); err != nil {
			return nil, nil, err
		}
		var err error
		if isDir(a.Path) && a.Recursive {
			if err = guard(a.Path); err != nil {
				return nil, nil, err
			}
			err = os.RemoveAll(a.Path)
		} else {
			err = os.Remove(a.Path)
		}
		if err != nil {
			return nil, nil, fileError(err)
		}
		return Reply{}, nil, nil
	})
	fileOp("fmove", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		if _, err := os.Lstat(a.Path); err != nil {
			return nil, nil, fileError(err)
		}
		for _, p := range []string{filepath.Dir(a.Path), filepath.Dir(a.To)} {
			if err := guard(p); err != nil {
				return nil, nil, err
			}
		}
		if info, err := os.Stat(filepath.Dir(a.To)); err != nil {
			return nil, nil, fileError(err)
		} else if !info.IsDir() {
			return nil, nil, fileError(syscall.ENOTDIR)
		}
		if _, err := os.Lstat(a.To); err == nil {
			if !a.Overwrite {
				return nil, nil, fileError(fs.ErrExist)
			}
			if isDir(a.To) != isDir(a.Path) {
				if isDir(a.To) {
					return nil, nil, fileError(syscall.EISDIR)
				}
				return nil, nil, fileError(syscall.ENOTDIR)
			}
		}
		if err := os.Rename(a.Path, a.To); err != nil {
			return nil, nil, fileError(err)
		}
		e, err := entryOf(a.To, false)
		return Reply{"entry": e}, nil, err
	})
	fileOp("fread", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		if a.Length <= 0 || a.Length > maxReadPiece || a.Offset < 0 {
			return nil, nil, badRequest("length must be 1..%d and offset not negative", maxReadPiece)
		}
		f, err := os.Open(a.Path)
		if err != nil {
			return nil, nil, fileError(err)
		}
		defer f.Close()
		if info, err := f.Stat(); err == nil && info.IsDir() {
			return nil, nil, fileError(syscall.EISDIR)
		}
		buf := make([]byte, a.Length)
		n, err := f.ReadAt(buf, a.Offset)
		if err != nil && err != io.EOF {
			return nil, nil, fileError(err)
		}
		return Reply{"eof": n < len(buf)}, buf[:n], nil
	})
	fileOp("fwopen", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		dir := filepath.Dir(a.Path)
		if err := guard(dir); err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, fileError(err)
		}
		if err := guard(dir); err != nil {
			return nil, nil, err
		}
		if isDir(a.Path) {
			return nil, nil, fileError(syscall.EISDIR)
		}
		f, err := os.OpenFile(a.Temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, nil, fileError(err)
		}
		f.Close()
		return Reply{}, nil, nil
	})
	fileOp("fwrite", func(a *fileArgs, payload []byte) (Reply, []byte, error) {
		// At its offset: the orchestrator keeps more than one piece in flight.
		f, err := os.OpenFile(a.Temp, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteAt(payload, a.Offset)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			os.Remove(a.Temp)
			return nil, nil, fileError(err)
		}
		return Reply{}, nil, nil
	})
	fileOp("fwcommit", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		err := func() error {
			info, err := os.Lstat(a.Temp)
			if err != nil {
				return err
			}
			if info.Size() != a.Size {
				return badRequest("the upload is incomplete")
			}
			if a.Mode != nil {
				if err := os.Chmod(a.Temp, os.FileMode(*a.Mode&0o777)|modeBits(*a.Mode)); err != nil {
					return err
				}
			}
			replaced := holdReplaced(a.Path)
			err = os.Rename(a.Temp, a.Path)
			if replaced != nil {
				go replaced.Close()
			}
			return err
		}()
		if err != nil {
			os.Remove(a.Temp)
			var oe *OpError
			if errors.As(err, &oe) {
				return nil, nil, err
			}
			return nil, nil, fileError(err)
		}
		e, err := entryOf(a.Path, false)
		return Reply{"entry": e}, nil, err
	})
	fileOp("fwabort", func(a *fileArgs, _ []byte) (Reply, []byte, error) {
		os.Remove(a.Temp)
		return Reply{}, nil, nil
	})
}

// holdReplaced opens the regular file a rename is about to replace, so the rename does not free
// its blocks: the last close does, here in the background once the reply went out. Replacing a
// 100 MiB file freshly written made the rename wait 20-50 ms for its pages and blocks to go. A
// FIFO or device is never opened (and O_NONBLOCK keeps a file swapped in meanwhile from blocking
// the open); if the agent stops first, the kernel closes the file and frees it all the same.
func holdReplaced(path string) *os.File {
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	return f
}

// modeBits carries setuid, setgid and sticky over into Go's FileMode.
func modeBits(mode int) os.FileMode {
	var m os.FileMode
	if mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

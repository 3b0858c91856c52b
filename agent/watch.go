package main

// File watches (`fswatch`, `fsunwatch`): inotify on a directory, or on a whole tree when
// recursive, streamed to the session as `fs` events. The name `watch` already means watching a
// process's output, hence `fswatch`.
//
// Each watch has its own inotify descriptor, so ending it (fsunwatch, the session closing, the
// watched directory going away) is one close: the kernel drops every watch of that descriptor.
// Events go through a bounded queue: when the session cannot keep up, events are dropped and one
// `overflow` event says so (the client re-lists), instead of memory growing without bound.
// IN_MOVED_FROM and IN_MOVED_TO of one rename share a cookie and are paired into one `moved`
// event; a move out of the watched tree is `deleted`, a move into it `created`. The kernel queues
// the two halves one after the other, so a read can end between them: an unpaired IN_MOVED_FROM
// waits up to moveWait for its other half in the next reads before it counts as a move out.

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const (
	watchQueueSize = 4096
	watchReadSize  = 64 << 10
	moveWait       = 200 * time.Millisecond
	watchMask      = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MODIFY | syscall.IN_ATTRIB |
		syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO | syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF |
		syscall.IN_ONLYDIR | syscall.IN_DONT_FOLLOW
)

// fsEvent is one change, as the client gets it.
type fsEvent struct {
	Type     string `json:"type"`
	Path     string `json:"path,omitempty"`
	FromPath string `json:"fromPath,omitempty"`
	IsDir    bool   `json:"isDir"`
	Ts       int64  `json:"ts"` // milliseconds since the epoch
}

type fsWatch struct {
	id        string
	root      string
	recursive bool
	file      *os.File // the inotify descriptor, in Go's poller so Close ends a blocked Read
	fd        int
	dirs      map[int32]string // watch descriptor -> directory
	queue     chan fsEvent
	overflow  chan struct{} // holds one token while events were dropped
	done      chan struct{}
	endOnce   sync.Once
	reason    string
	moves     map[uint32]pendingMove // IN_MOVED_FROM halves waiting for their IN_MOVED_TO, by cookie
}

// pendingMove is the first half of a rename, kept until its other half or moveWait.
type pendingMove struct {
	path  string
	isDir bool
	seen  time.Time
}

var (
	watchesMu sync.Mutex
	watches   = map[string]*fsWatch{}
)

type fswatchArgs struct {
	Watch     string `json:"watch"`
	Path      string `json:"path"`
	Recursive bool   `json:"recursive"`
}

func init() {
	register("fswatch", func(c *Conn, r *Request) (Reply, []byte, error) {
		var args fswatchArgs
		if err := r.Decode(&args); err != nil {
			return nil, nil, err
		}
		if args.Watch == "" {
			return nil, nil, badRequest("watch is required")
		}
		w, err := startWatch(args.Watch, args.Path, args.Recursive)
		if err != nil {
			return nil, nil, err
		}
		watchesMu.Lock()
		if _, dup := watches[args.Watch]; dup {
			watchesMu.Unlock()
			w.stop("replaced")
			return nil, nil, badRequest("watch %s exists", args.Watch)
		}
		watches[args.Watch] = w
		watchesMu.Unlock()
		c.OnClose(func() { w.stop("session closed") })
		go w.deliver(func(e Reply) error { return c.Event(e, nil) })
		return Reply{"path": w.root}, nil, nil
	})
	register("fsunwatch", func(c *Conn, r *Request) (Reply, []byte, error) {
		var args fswatchArgs
		if err := r.Decode(&args); err != nil {
			return nil, nil, err
		}
		watchesMu.Lock()
		w := watches[args.Watch]
		watchesMu.Unlock()
		if w != nil {
			w.stop("unwatched")
		}
		return Reply{}, nil, nil
	})
}

// startWatch resolves path inside the sandbox (symlinks in the agent's own root) and watches it.
func startWatch(id, path string, recursive bool) (*fsWatch, error) {
	if !filepath.IsAbs(path) {
		return nil, badRequest("path must be absolute")
	}
	root, err := filepath.EvalSymlinks(filepath.Clean(path))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, notFound("no such directory: %s", path)
		}
		return nil, &OpError{Code: "FORBIDDEN", Message: err.Error()}
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, notFound("no such directory: %s", path)
	}
	if !info.IsDir() {
		return nil, &OpError{Code: "NOT_A_DIRECTORY", Message: "not a directory: " + path}
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, &OpError{Code: "UNAVAILABLE", Message: "inotify: " + err.Error()}
	}
	w := &fsWatch{
		id: id, root: root, recursive: recursive, fd: fd,
		file:     os.NewFile(uintptr(fd), "inotify"),
		dirs:     map[int32]string{},
		moves:    map[uint32]pendingMove{},
		queue:    make(chan fsEvent, watchQueueSize),
		overflow: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if err := w.add(root); err != nil {
		w.file.Close()
		return nil, &OpError{Code: "UNAVAILABLE", Message: "inotify: " + err.Error()}
	}
	if recursive {
		w.walk(root, false)
	}
	go w.read()
	return w, nil
}

func (w *fsWatch) add(dir string) error {
	wd, err := syscall.InotifyAddWatch(w.fd, dir, watchMask)
	if err != nil {
		return err
	}
	w.dirs[int32(wd)] = dir
	return nil
}

// walk watches every directory under dir; announce also reports what it finds as created (a
// directory made with content, e.g. `mkdir -p a/b` or a moved-in tree, filled before its watch).
func (w *fsWatch) walk(dir string, announce bool) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		if announce {
			w.push(fsEvent{Type: "created", Path: p, IsDir: d.IsDir()})
		}
		if d.IsDir() {
			_ = w.add(p)
		}
		return nil
	})
}

// push queues an event, or notes the overflow when the queue is full.
func (w *fsWatch) push(e fsEvent) {
	e.Ts = time.Now().UnixMilli()
	select {
	case w.queue <- e:
	default:
		select {
		case w.overflow <- struct{}{}:
		default:
		}
	}
}

func (w *fsWatch) read() {
	defer w.stop("ended")
	buf := make([]byte, watchReadSize)
	for {
		// While a rename's first half waits, the read waits no longer than its deadline.
		deadline := time.Time{}
		for _, m := range w.moves {
			if d := m.seen.Add(moveWait); deadline.IsZero() || d.Before(deadline) {
				deadline = d
			}
		}
		_ = w.file.SetReadDeadline(deadline)
		n, err := w.file.Read(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.expireMoves(time.Now())
			continue
		case err != nil:
			return
		}
		alive := w.handle(buf[:n])
		w.expireMoves(time.Now())
		if !alive {
			w.expireMoves(time.Time{})
			w.stop("deleted")
			return
		}
	}
}

// expireMoves reports the renames whose other half did not come by moveWait as moves out of the
// watched tree; a zero now expires them all.
func (w *fsWatch) expireMoves(now time.Time) {
	for cookie, from := range w.moves {
		if !now.IsZero() && now.Sub(from.seen) < moveWait {
			continue
		}
		delete(w.moves, cookie)
		w.push(fsEvent{Type: "deleted", Path: from.path, IsDir: from.isDir})
		if from.isDir {
			w.drop(from.path)
		}
	}
}

// handle turns one read's events into fs events; false once the watched directory is gone.
func (w *fsWatch) handle(buf []byte) bool {
	alive := true
	for off := 0; off+syscall.SizeofInotifyEvent <= len(buf); {
		raw := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(raw.Len)]
		off += syscall.SizeofInotifyEvent + int(raw.Len)
		name := strings.TrimRight(string(nameBytes), "\x00")
		mask := raw.Mask
		if mask&syscall.IN_Q_OVERFLOW != 0 {
			select {
			case w.overflow <- struct{}{}:
			default:
			}
			continue
		}
		dir, known := w.dirs[raw.Wd]
		if mask&syscall.IN_IGNORED != 0 {
			delete(w.dirs, raw.Wd)
			if dir == w.root {
				alive = false
			}
			continue
		}
		if !known {
			continue
		}
		if mask&(syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF) != 0 {
			if dir == w.root {
				alive = false
			}
			continue
		}
		path := filepath.Join(dir, name)
		isDir := mask&syscall.IN_ISDIR != 0
		switch {
		case mask&syscall.IN_CREATE != 0:
			w.push(fsEvent{Type: "created", Path: path, IsDir: isDir})
			if isDir && w.recursive {
				_ = w.add(path)
				w.walk(path, true)
			}
		case mask&syscall.IN_DELETE != 0:
			w.push(fsEvent{Type: "deleted", Path: path, IsDir: isDir})
		case mask&(syscall.IN_MODIFY|syscall.IN_ATTRIB) != 0:
			if !isDir {
				w.push(fsEvent{Type: "modified", Path: path, IsDir: false})
			}
		case mask&syscall.IN_MOVED_FROM != 0:
			w.moves[raw.Cookie] = pendingMove{path: path, isDir: isDir, seen: time.Now()}
		case mask&syscall.IN_MOVED_TO != 0:
			from, paired := w.moves[raw.Cookie]
			if paired {
				delete(w.moves, raw.Cookie)
				w.push(fsEvent{Type: "moved", Path: path, FromPath: from.path, IsDir: isDir})
				if isDir {
					w.rename(from.path, path)
				}
			} else {
				w.push(fsEvent{Type: "created", Path: path, IsDir: isDir})
				if isDir && w.recursive {
					_ = w.add(path)
					w.walk(path, true)
				}
			}
		}
	}
	return alive
}

// rename keeps the watched directories' paths right after a directory moved inside the tree
// (inotify watches follow the inode, only our names change).
func (w *fsWatch) rename(from, to string) {
	for wd, dir := range w.dirs {
		if dir == from || strings.HasPrefix(dir, from+"/") {
			w.dirs[wd] = to + dir[len(from):]
		}
	}
}

// drop stops watching a directory that left the tree, and everything under it.
func (w *fsWatch) drop(from string) {
	for wd, dir := range w.dirs {
		if dir == from || strings.HasPrefix(dir, from+"/") {
			_, _ = syscall.InotifyRmWatch(w.fd, uint32(wd))
			delete(w.dirs, wd)
		}
	}
}

// deliver sends queued events until the watch ends, then the end with its reason.
func (w *fsWatch) deliver(send func(Reply) error) {
	emit := func(e fsEvent) bool {
		r := Reply{"event": "fs", "watch": w.id, "type": e.Type, "path": e.Path, "isDir": e.IsDir, "ts": e.Ts}
		if e.FromPath != "" {
			r["fromPath"] = e.FromPath
		}
		return send(r) == nil
	}
	for {
		select {
		case e := <-w.queue:
			if !emit(e) {
				w.stop("session closed")
				return
			}
		case <-w.overflow:
			if send(Reply{"event": "fs", "watch": w.id, "type": "overflow", "ts": time.Now().UnixMilli()}) != nil {
				w.stop("session closed")
				return
			}
		case <-w.done:
			for len(w.queue) > 0 {
				emit(<-w.queue)
			}
			_ = send(Reply{"event": "fsend", "watch": w.id, "reason": w.reason})
			return
		}
	}
}

// stop ends the watch once: its descriptor closed (every inotify watch with it).
func (w *fsWatch) stop(reason string) {
	w.endOnce.Do(func() {
		w.reason = reason
		watchesMu.Lock()
		if watches[w.id] == w {
			delete(watches, w.id)
		}
		watchesMu.Unlock()
		w.file.Close()
		close(w.done)
	})
}

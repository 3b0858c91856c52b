package main

// Background processes the daemon owns: they outlive every session, and so does their output.
//
// Each process's output (stdout and stderr through pipes, or one pseudo-terminal) is cut into
// chunks numbered 1, 2, 3, ... without gaps. A chunk stays in the process's buffer until the
// orchestrator acknowledges it (`ack`, once it has stored it). When the buffer holds
// `bufferBytes` of unacknowledged output the daemon stops reading the process's pipes: the
// process blocks on its next write (backpressure), so nothing is dropped while the orchestrator
// is away. A session `watch`es a process from a seq on: every buffered chunk after it, then each
// new one, then the exit, arrive as events on that session.
//
// Events: {event: "output", process, seq, stream: "stdout"|"stderr"|"pty", ts} + the bytes;
// {event: "exit", process, exitCode, signal, timedOut, lastSeq}.

import (
	"io"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"
)

const (
	defaultBufferBytes = 4 << 20
	chunkBytes         = 32 << 10
	// After a process exits, its pipes are read until they stay empty for this long (a
	// background child may keep them open for ever).
	processDrainGrace = time.Second
)

type chunk struct {
	seq    uint64
	stream string
	ts     int64 // Unix milliseconds
	data   []byte
}

type process struct {
	id      string
	argv    []string
	tty     bool
	cmd     *exec.Cmd
	pid     int
	ptmx    *os.File
	stdin   io.WriteCloser
	started time.Time

	mu          sync.Mutex
	changed     *sync.Cond
	chunks      []chunk
	bufBytes    int
	bufferBytes int
	lastSeq     uint64
	exited      bool // the process was reaped
	ended       bool // reaped and its output read to the end
	exitCode    int
	signal      string
	timedOut    bool
	readers     []*os.File
}

type processTable struct {
	mu    sync.Mutex
	procs map[string]*process
}

var processes = &processTable{procs: map[string]*process{}}

func (t *processTable) get(id string) (*process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.procs[id]
	if !ok {
		return nil, notFound("no process %q", id)
	}
	return p, nil
}

func init() {
	register("spawn", opSpawn)
	register("stdin", opStdin)
	register("signal", opSignal)
	register("resize", opResize)
	register("wait", opWait)
	register("list", opList)
	register("watch", opWatch)
	register("ack", opAck)
	register("forget", opForget)
}

type spawnArgs struct {
	Process     string            `json:"process"`
	Argv        []string          `json:"argv"`
	Env         map[string]string `json:"env"`
	Workdir     string            `json:"workdir"`
	TTY         bool              `json:"tty"`
	Cols        int               `json:"cols"`
	Rows        int               `json:"rows"`
	Stdin       bool              `json:"stdin"`
	TimeoutMs   int64             `json:"timeoutMs"`
	BufferBytes int               `json:"bufferBytes"`
}

func (p *process) describe() Reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Reply{
		"process": p.id, "pid": p.pid, "tty": p.tty, "running": !p.ended, "exitCode": p.exitCode,
		"signal": p.signal, "timedOut": p.timedOut, "lastSeq": p.lastSeq,
		"startedAt": p.started.UnixMilli(),
	}
}

// opSpawn starts a process, or answers with the one of that id already started (a spawn the
// orchestrator repeats after losing its session is harmless).
func opSpawn(c *Conn, r *Request) (Reply, []byte, error) {
	var args spawnArgs
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	if args.Process == "" {
		return nil, nil, badRequest("a process id is required")
	}
	processes.mu.Lock()
	defer processes.mu.Unlock()
	if existing, ok := processes.procs[args.Process]; ok {
		return existing.describe(), nil, nil
	}
	p, err := startProcess(args)
	if err != nil {
		return nil, nil, err
	}
	processes.procs[p.id] = p
	reply := p.describe()
	reply["spawned"] = true
	return reply, nil, nil
}

func startProcess(args spawnArgs) (*process, error) {
	cmd, err := newCommand(args.Argv, args.Env, args.Workdir)
	if err != nil {
		return nil, err
	}
	p := &process{id: args.Process, argv: args.Argv, tty: args.TTY, bufferBytes: args.BufferBytes}
	if p.bufferBytes <= 0 {
		p.bufferBytes = defaultBufferBytes
	}
	p.changed = sync.NewCond(&p.mu)
	var closeInParent []*os.File
	type source struct {
		f      *os.File
		stream string
	}
	var sources []source
	if args.TTY {
		ptmx, peer, err := openPTY()
		if err != nil {
			return nil, err
		}
		cols, rows := args.Cols, args.Rows
		if cols <= 0 {
			cols = 80
		}
		if rows <= 0 {
			rows = 24
		}
		if err := setWinsize(ptmx, cols, rows); err != nil {
			ptmx.Close()
			return nil, err
		}
		tty, err := os.OpenFile(peer, os.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			ptmx.Close()
			return nil, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		closeInParent = append(closeInParent, tty)
		p.ptmx, p.stdin = ptmx, ptmx
		sources = append(sources, source{ptmx, "pty"})
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if args.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			cmd.Stdin = r
			closeInParent = append(closeInParent, r)
			p.stdin = w
		}
		for _, stream := range []string{"stdout", "stderr"} {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			if stream == "stdout" {
				cmd.Stdout = w
			} else {
				cmd.Stderr = w
			}
			closeInParent = append(closeInParent, w)
			sources = append(sources, source{r, stream})
		}
	}
	p.started = time.Now()
	err = cmd.Start()
	for _, f := range closeInParent {
		f.Close()
	}
	if err != nil {
		for _, s := range sources {
			s.f.Close()
		}
		if p.ptmx != nil {
			p.ptmx.Close()
		} else if p.stdin != nil {
			p.stdin.Close()
		}
		// As a shell would: the process ends at once with 127 (not found) or 126, saying why.
		code, message := startError(err)
		p.lastSeq = 1
		p.chunks = []chunk{{seq: 1, stream: "stderr", ts: time.Now().UnixMilli(), data: []byte(message)}}
		p.bufBytes = len(message)
		if args.TTY {
			p.chunks[0].stream = "pty"
		}
		p.stdin, p.ptmx = nil, nil
		p.exited, p.ended, p.exitCode = true, true, code
		return p, nil
	}
	p.cmd = cmd
	p.pid = cmd.Process.Pid
	var readers sync.WaitGroup
	for _, s := range sources {
		p.readers = append(p.readers, s.f)
		readers.Add(1)
		go func(f *os.File, stream string) {
			defer readers.Done()
			p.pump(f, stream)
		}(s.f, s.stream)
	}
	go p.waitFor(&readers, args.TimeoutMs)
	return p, nil
}

// pump reads one output stream into numbered chunks, pausing while the buffer is full.
func (p *process) pump(f *os.File, stream string) {
	defer f.Close()
	buf := make([]byte, chunkBytes)
	for {
		p.mu.Lock()
		for p.bufBytes >= p.bufferBytes {
			p.changed.Wait() // backpressure: the process blocks on its next write
		}
		exited := p.exited
		p.mu.Unlock()
		if exited {
			_ = f.SetReadDeadline(time.Now().Add(processDrainGrace))
		}
		n, err := f.Read(buf)
		if n > 0 {
			data := make([]byte, n)
			copy(data, buf[:n])
			p.mu.Lock()
			p.lastSeq++
			p.chunks = append(p.chunks, chunk{seq: p.lastSeq, stream: stream, ts: time.Now().UnixMilli(), data: data})
			p.bufBytes += n
			p.changed.Broadcast()
			p.mu.Unlock()
		}
		if err != nil {
			return // EOF, EIO (a pty whose last holder closed it) or the drain deadline
		}
	}
}

func (p *process) waitFor(readers *sync.WaitGroup, timeoutMs int64) {
	var timer *time.Timer
	if timeoutMs > 0 {
		timer = time.AfterFunc(time.Duration(timeoutMs)*time.Millisecond, func() {
			p.mu.Lock()
			p.timedOut = true
			p.mu.Unlock()
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		})
	}
	_ = p.cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	code, sig := exitStatus(p.cmd.ProcessState)
	p.mu.Lock()
	p.exited, p.exitCode, p.signal = true, code, sig
	p.changed.Broadcast()
	p.mu.Unlock()
	// Readers blocked in a read now get the drain deadline too.
	for _, f := range p.readers {
		_ = f.SetReadDeadline(time.Now().Add(processDrainGrace))
	}
	readers.Wait()
	if p.stdin != nil && p.ptmx == nil {
		p.stdin.Close()
	}
	p.mu.Lock()
	p.ended = true
	p.changed.Broadcast()
	p.mu.Unlock()
}

type processRef struct {
	Process string `json:"process"`
}

func opStdin(c *Conn, r *Request) (Reply, []byte, error) {
	var args struct {
		processRef
		EOF bool `json:"eof"`
	}
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	p, err := processes.get(args.Process)
	if err != nil {
		return nil, nil, err
	}
	if p.stdin == nil {
		return nil, nil, &OpError{Code: "INVALID_STATE", Message: "the process was started without stdin"}
	}
	written := 0
	if len(r.Payload) > 0 {
		written, err = p.stdin.Write(r.Payload)
		if err != nil {
			return nil, nil, &OpError{Code: "INVALID_STATE", Message: "stdin is closed: " + err.Error()}
		}
	}
	if args.EOF {
		if p.ptmx != nil {
			_, _ = p.ptmx.Write([]byte{4}) // ^D: end of input for the program reading the terminal
		} else {
			_ = p.stdin.Close()
		}
	}
	return Reply{"written": written}, nil, nil
}

func opSignal(c *Conn, r *Request) (Reply, []byte, error) {
	var args struct {
		processRef
		Signal string `json:"signal"`
	}
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	sig, ok := parseSignal(args.Signal)
	if !ok {
		return nil, nil, badRequest("unknown signal %q", args.Signal)
	}
	p, err := processes.get(args.Process)
	if err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if !exited {
		// The process's group: its children get it too, as from a terminal.
		if err := syscall.Kill(-p.pid, sig); err != nil {
			_ = syscall.Kill(p.pid, sig)
		}
	}
	return p.describe(), nil, nil
}

func opResize(c *Conn, r *Request) (Reply, []byte, error) {
	var args struct {
		processRef
		Cols int `json:"cols"`
		Rows int `json:"rows"`
	}
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	p, err := processes.get(args.Process)
	if err != nil {
		return nil, nil, err
	}
	if p.ptmx == nil {
		return nil, nil, &OpError{Code: "INVALID_STATE", Message: "the process has no terminal"}
	}
	if args.Cols <= 0 || args.Rows <= 0 || args.Cols > 65535 || args.Rows > 65535 {
		return nil, nil, badRequest("cols and rows must be 1-65535")
	}
	if err := setWinsize(p.ptmx, args.Cols, args.Rows); err != nil {
		return nil, nil, err
	}
	return Reply{}, nil, nil
}

func opWait(c *Conn, r *Request) (Reply, []byte, error) {
	var args processRef
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	p, err := processes.get(args.Process)
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		p.mu.Lock()
		for !p.ended {
			p.changed.Wait()
		}
		p.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-c.closed:
	}
	return p.describe(), nil, nil
}

func opList(c *Conn, r *Request) (Reply, []byte, error) {
	processes.mu.Lock()
	all := make([]*process, 0, len(processes.procs))
	for _, p := range processes.procs {
		all = append(all, p)
	}
	processes.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].started.Before(all[j].started) })
	out := make([]Reply, 0, len(all))
	for _, p := range all {
		out = append(out, p.describe())
	}
	return Reply{"processes": out}, nil, nil
}

// opWatch sends this session every buffered chunk after `since`, each new one, then the exit.
// `firstSeq` in the reply is the oldest chunk still buffered (older ones were acknowledged).
func opWatch(c *Conn, r *Request) (Reply, []byte, error) {
	var args struct {
		processRef
		Since uint64 `json:"since"`
	}
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	p, err := processes.get(args.Process)
	if err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	first := p.lastSeq + 1
	if len(p.chunks) > 0 {
		first = p.chunks[0].seq
	}
	p.mu.Unlock()
	stop := make(chan struct{})
	var once sync.Once
	unwatch := func() {
		once.Do(func() {
			close(stop)
			p.mu.Lock()
			p.changed.Broadcast()
			p.mu.Unlock()
		})
	}
	c.OnClose(unwatch)
	go p.feed(c, args.Since, stop)
	return Reply{"firstSeq": first}, nil, nil
}

// feed pushes chunks after `since` and then the exit to one session, at the session's pace.
func (p *process) feed(c *Conn, since uint64, stop chan struct{}) {
	sent := since
	for {
		p.mu.Lock()
		var next []chunk
		for {
			select {
			case <-stop:
				p.mu.Unlock()
				return
			default:
			}
			next = next[:0]
			for _, ch := range p.chunks {
				if ch.seq > sent {
					next = append(next, ch)
				}
			}
			if len(next) > 0 || (p.ended && sent >= p.lastSeq) {
				break
			}
			p.changed.Wait()
		}
		ended, lastSeq := p.ended, p.lastSeq
		exit := Reply{
			"event": "exit", "process": p.id, "exitCode": p.exitCode, "signal": p.signal,
			"timedOut": p.timedOut, "lastSeq": p.lastSeq,
		}
		batch := append([]chunk(nil), next...)
		p.mu.Unlock()
		for _, ch := range batch {
			err := c.Event(Reply{"event": "output", "process": p.id, "seq": ch.seq, "stream": ch.stream, "ts": ch.ts}, ch.data)
			if err != nil {
				return
			}
			sent = ch.seq
		}
		if len(batch) == 0 && ended && sent >= lastSeq {
			_ = c.Event(exit, nil)
			return
		}
	}
}

// opAck drops the chunks up to `seq` (stored by the orchestrator): the buffer has room again.
func opAck(c *Conn, r *Request) (Reply, []byte, error) {
	var args struct {
		processRef
		Seq uint64 `json:"seq"`
	}
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	p, err := processes.get(args.Process)
	if err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	keep := 0
	for keep < len(p.chunks) && p.chunks[keep].seq <= args.Seq {
		p.bufBytes -= len(p.chunks[keep].data)
		keep++
	}
	p.chunks = append([]chunk(nil), p.chunks[keep:]...)
	p.changed.Broadcast()
	p.mu.Unlock()
	return Reply{}, nil, nil
}

// opForget drops an ended process the orchestrator has recorded to the end.
func opForget(c *Conn, r *Request) (Reply, []byte, error) {
	var args processRef
	if err := r.Decode(&args); err != nil {
		return nil, nil, err
	}
	p, err := processes.get(args.Process)
	if err != nil {
		return Reply{}, nil, nil
	}
	p.mu.Lock()
	ended := p.ended
	p.mu.Unlock()
	if !ended {
		return nil, nil, &OpError{Code: "INVALID_STATE", Message: "the process is still running"}
	}
	processes.mu.Lock()
	delete(processes.procs, args.Process)
	processes.mu.Unlock()
	return Reply{}, nil, nil
}

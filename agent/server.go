package main

// The daemon: one listener on an abstract unix socket, one goroutine per connection reading
// frames, one goroutine per request, and a dispatch table of operations that each family of
// operations (exec.go, process.go, ...) fills from its init function.
//
// An abstract socket has no file: it belongs to the network namespace of the container, so only
// processes of this sandbox can connect to it, and they run as the same user with the same
// capabilities as the daemon (connecting grants nothing they could not do themselves).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

// socketName is abstract (leading "@"): Go binds it in the abstract namespace on Linux.
const socketName = "@sbx-agent"

// Reply is an operation's answer header (the server adds `id`).
type Reply map[string]interface{}

// OpError is a failed operation's code and sentence, sent as `error`.
type OpError struct {
	Code    string
	Message string
}

func (e *OpError) Error() string { return e.Code + ": " + e.Message }

func badRequest(format string, args ...interface{}) error {
	return &OpError{Code: "VALIDATION_ERROR", Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...interface{}) error {
	return &OpError{Code: "NOT_FOUND", Message: fmt.Sprintf(format, args...)}
}

// Request is one decoded request frame.
type Request struct {
	ID      uint64 `json:"id"`
	Op      string `json:"op"`
	header  []byte
	Payload []byte
}

// Decode reads the request's header into an operation's own argument struct.
func (r *Request) Decode(v interface{}) error {
	if err := json.Unmarshal(r.header, v); err != nil {
		return badRequest("malformed %s request: %v", r.Op, err)
	}
	return nil
}

type handler func(c *Conn, r *Request) (Reply, []byte, error)

var ops = map[string]handler{}

// register adds an operation to the dispatch table (called from the families' init functions).
func register(name string, h handler) {
	if _, dup := ops[name]; dup {
		panic("operation registered twice: " + name)
	}
	ops[name] = h
}

func init() {
	register("hello", func(c *Conn, r *Request) (Reply, []byte, error) {
		return Reply{"version": ProtocolVersion, "pid": os.Getpid(), "uid": os.Getuid()}, nil, nil
	})
}

// Conn is one client connection (one orchestrator session).
type Conn struct {
	nc      net.Conn
	writeMu sync.Mutex
	closed  chan struct{}
	once    sync.Once
	// Functions run when the connection ends (e.g. dropping its output subscriptions).
	cleanupMu sync.Mutex
	cleanups  []func()
}

func (c *Conn) send(header interface{}, payload []byte) error {
	data, err := encodeFrame(header, payload)
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_, err = c.nc.Write(data)
	return err
}

// Event pushes a frame the client did not ask for (id 0).
func (c *Conn) Event(header Reply, payload []byte) error {
	header["id"] = 0
	return c.send(header, payload)
}

// OnClose runs fn when the connection ends.
func (c *Conn) OnClose(fn func()) {
	c.cleanupMu.Lock()
	defer c.cleanupMu.Unlock()
	c.cleanups = append(c.cleanups, fn)
}

func (c *Conn) close() {
	c.once.Do(func() {
		close(c.closed)
		c.nc.Close()
		c.cleanupMu.Lock()
		fns := c.cleanups
		c.cleanups = nil
		c.cleanupMu.Unlock()
		for _, fn := range fns {
			fn()
		}
	})
}

func serve(name string) error {
	listener, err := net.Listen("unix", name)
	if err != nil {
		return err
	}
	for {
		nc, err := listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Temporary() {
				continue
			}
			return err
		}
		c := &Conn{nc: nc, closed: make(chan struct{})}
		go c.run()
	}
}

func (c *Conn) run() {
	defer c.close()
	for {
		frame, err := readFrame(c.nc)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintln(os.Stderr, "sbx-agent: connection:", err)
			}
			return
		}
		req := &Request{header: frame.Header, Payload: frame.Payload}
		if err := json.Unmarshal(frame.Header, req); err != nil {
			return // not our protocol: drop the connection
		}
		go c.handle(req)
	}
}

func (c *Conn) handle(r *Request) {
	h, ok := ops[r.Op]
	var reply Reply
	var payload []byte
	var err error
	if !ok {
		err = badRequest("unknown operation %q", r.Op)
	} else {
		reply, payload, err = h(c, r)
	}
	if err != nil {
		code, message := "INTERNAL_ERROR", err.Error()
		var oe *OpError
		if errors.As(err, &oe) {
			code, message = oe.Code, oe.Message
		}
		reply, payload = Reply{"error": ErrorBody{Code: code, Message: message}}, nil
	}
	if reply == nil {
		reply = Reply{}
	}
	reply["id"] = r.ID
	if err := c.send(reply, payload); err != nil {
		c.close()
	}
}

// A WebSocket echo server for the port proxy's tests, standard library only (built static, it
// runs in the busybox test image). Text and binary frames come back as they came; a text
// "close-me" makes the server close with 4321 "bye"; a client's close is answered with the same
// code. The handshake's subprotocol is the client's first offer; GET /headers (no upgrade)
// answers with the request line and headers it received; with a directory as second argument,
// other requests without an upgrade are served from it (a page that opens its own WebSocket).
package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

var files http.Handler

func main() {
	addr := ":9000"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	if len(os.Args) > 2 {
		files = http.FileServer(http.Dir(os.Args[2]))
	}
	http.HandleFunc("/", handle)
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func handle(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		if files != nil && r.URL.Path != "/headers" {
			files.ServeHTTP(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s\n", r.Method, r.RequestURI)
		for name, values := range r.Header {
			for _, v := range values {
				fmt.Fprintf(w, "%s: %s\n", strings.ToLower(name), v)
			}
		}
		return
	}
	key := r.Header.Get("Sec-Websocket-Key")
	sum := sha1.Sum([]byte(key + guid))
	accept := base64.StdEncoding.EncodeToString(sum[:])
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	reply := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + accept + "\r\n"
	if offered := r.Header.Get("Sec-Websocket-Protocol"); offered != "" {
		reply += "Sec-WebSocket-Protocol: " + strings.TrimSpace(strings.Split(offered, ",")[0]) + "\r\n"
	}
	rw.WriteString(reply + "\r\n")
	rw.Flush()
	echo(conn, rw.Reader)
}

func echo(conn net.Conn, in *bufio.Reader) {
	var message []byte
	var kind byte
	for {
		fin, opcode, payload, err := readFrame(in)
		if err != nil {
			return
		}
		switch opcode {
		case 0x8:
			writeFrame(conn, 0x8, payload)
			return
		case 0x9:
			writeFrame(conn, 0xA, payload)
			continue
		case 0xA:
			continue
		case 0x1, 0x2:
			kind, message = opcode, payload
		case 0x0:
			message = append(message, payload...)
		}
		if !fin {
			continue
		}
		if kind == 0x1 && string(message) == "close-me" {
			body := make([]byte, 2)
			binary.BigEndian.PutUint16(body, 4321)
			writeFrame(conn, 0x8, append(body, []byte("bye")...))
			readFrame(in) // the client's answering close
			return
		}
		writeFrame(conn, kind, message)
	}
}

func readFrame(in *bufio.Reader) (bool, byte, []byte, error) {
	head := make([]byte, 2)
	if _, err := io.ReadFull(in, head); err != nil {
		return false, 0, nil, err
	}
	fin, opcode, masked := head[0]&0x80 != 0, head[0]&0x0F, head[1]&0x80 != 0
	length := uint64(head[1] & 0x7F)
	switch length {
	case 126:
		ext := make([]byte, 2)
		if _, err := io.ReadFull(in, ext); err != nil {
			return false, 0, nil, err
		}
		length = uint64(binary.BigEndian.Uint16(ext))
	case 127:
		ext := make([]byte, 8)
		if _, err := io.ReadFull(in, ext); err != nil {
			return false, 0, nil, err
		}
		length = binary.BigEndian.Uint64(ext)
	}
	var mask [4]byte
	if masked {
		if _, err := io.ReadFull(in, mask[:]); err != nil {
			return false, 0, nil, err
		}
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(in, payload); err != nil {
		return false, 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return fin, opcode, payload, nil
}

func writeFrame(conn net.Conn, opcode byte, payload []byte) {
	head := []byte{0x80 | opcode}
	n := len(payload)
	switch {
	case n < 126:
		head = append(head, byte(n))
	case n < 65536:
		head = append(head, 126, byte(n>>8), byte(n))
	default:
		ext := make([]byte, 8)
		binary.BigEndian.PutUint64(ext, uint64(n))
		head = append(append(head, 127), ext...)
	}
	conn.Write(append(head, payload...))
}

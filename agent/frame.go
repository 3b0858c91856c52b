package main

// Frames: a 4-byte big-endian header length, a 4-byte big-endian payload length, the header
// (a JSON object) and the payload (raw bytes, often empty). Requests carry `id` and `op`;
// replies carry the request's `id` (and `error` when it failed); events the daemon pushes on its
// own carry `id` 0 and `event`.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

const (
	maxHeader  = 1 << 20
	maxPayload = 16 << 20
)

// Frame is one message either way.
type Frame struct {
	Header  []byte
	Payload []byte
}

// ErrorBody is the `error` of a failed reply: a code the orchestrator maps and a sentence.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// readFrame reads one frame; io.EOF at a frame boundary means the peer is done.
func readFrame(r io.Reader) (Frame, error) {
	var prefix [8]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return Frame{}, err
	}
	hlen := binary.BigEndian.Uint32(prefix[0:4])
	plen := binary.BigEndian.Uint32(prefix[4:8])
	if hlen == 0 || hlen > maxHeader || plen > maxPayload {
		return Frame{}, fmt.Errorf("frame too large or empty (header %d, payload %d)", hlen, plen)
	}
	buf := make([]byte, int(hlen)+int(plen))
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return Frame{Header: buf[:hlen], Payload: buf[hlen:]}, nil
}

// encodeFrame is a frame's bytes, header given as any JSON-encodable value.
func encodeFrame(header interface{}, payload []byte) ([]byte, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	if len(h) > maxHeader || len(payload) > maxPayload {
		return nil, errors.New("frame too large")
	}
	out := make([]byte, 8, 8+len(h)+len(payload))
	binary.BigEndian.PutUint32(out[0:4], uint32(len(h)))
	binary.BigEndian.PutUint32(out[4:8], uint32(len(payload)))
	out = append(out, h...)
	return append(out, payload...), nil
}

"""The agent's frames, and Docker's multiplexed exec stream they travel in.

A frame is a 4-byte big-endian header length, a 4-byte big-endian payload length, the header (a
JSON object) and the payload (raw bytes). Requests carry `id` and `op`; a reply carries its
request's `id` (and `error: {code, message}` when the operation failed); events the agent pushes
on its own carry `id` 0 and `event`.

Docker's exec stream without a TTY wraps what the process writes in its own frames: one byte
for the stream (1 stdout, 2 stderr), three zero bytes, a 4-byte big-endian length, the bytes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

MAX_HEADER = 1 << 20
MAX_PAYLOAD = 16 << 20
_PREFIX = struct.Struct(">II")
DOCKER_STDOUT, DOCKER_STDERR = 1, 2


class ProtocolError(Exception):
    """The bytes are not frames of the agent's protocol."""


def encode_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    if len(encoded) > MAX_HEADER or len(payload) > MAX_PAYLOAD:
        raise ProtocolError("frame too large")
    return _PREFIX.pack(len(encoded), len(payload)) + encoded + payload


@dataclass
class FrameBuffer:
    """Bytes in, whole frames out (a frame may arrive in any number of pieces)."""

    _data: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        self._data += data
        frames = []
        while len(self._data) >= _PREFIX.size:
            header_size, payload_size = _PREFIX.unpack_from(self._data)
            if not 0 < header_size <= MAX_HEADER or payload_size > MAX_PAYLOAD:
                raise ProtocolError("frame too large or empty")
            end = _PREFIX.size + header_size + payload_size
            if len(self._data) < end:
                break
            header = json.loads(bytes(self._data[_PREFIX.size : _PREFIX.size + header_size]))
            if not isinstance(header, dict):
                raise ProtocolError("a frame's header is not an object")
            frames.append((header, bytes(self._data[_PREFIX.size + header_size : end])))
            del self._data[:end]
        return frames

"""The hand-written paths of log lines: Docker frames to lines and stored lines to `LogBatch` JSON
(the shipper), and lines to the logs socket's frames (the API).

They replaced general code (pydantic objects per line, the general split and decode helpers,
a dict and `json.dumps` per frame) on hot paths; these hold them to what that code produced.
"""

from __future__ import annotations

import json
import struct
import uuid
from datetime import UTC, datetime

from sbx_api.streams.logs import encode_live, encode_stored, live_lines
from sbx_api.streams.repository import StoredLine
from sbx_api.streams.schemas import log_batch_frame_json, log_frame, log_frame_json
from sbx_common.messages import LogBatch, LogLine
from sbx_log_shipper.frames import FrameDecoder, LineParser, RawLine, parse_timestamp
from sbx_log_shipper.publisher import encode_batch, json_timestamp, split_for_messages

SANDBOX = uuid.UUID("0b5a3e36-5c58-4b6e-9b1e-7d2f3c4a5b6c")
TEXTS = [
    "plain",
    "",
    'quotes " and \\ backslashes',
    "tab\tcarriage\rbell\x07escape\x1b[31mred\x1b[0m",
    "unicode é 漢字 \u2028 \u2029 \U0001f600",
    "\x7f delete and \ufffd replacement",
    "x" * 5000,
]


def stored(texts: list[str]) -> list[RawLine]:
    """Lines as the shipper holds them once stored: Docker's timestamps, some with trailing
    zeros of the fraction left out as Docker writes them, one on a whole second."""
    raws = ["2026-12-02T05:43:03Z", "2026-12-02T05:43:03.1Z", "2026-12-02T05:43:03.000137001Z"]
    raws += [f"2026-12-02T05:43:04.{i:09d}Z" for i in range(123456789, 123456789 + len(texts))]
    return [
        RawLine("stderr" if i % 2 else "stdout", text, parse_timestamp(raws[i]), raws[i])
        for i, text in enumerate(texts)
    ]


def model_of(first_seq: int, lines: list[RawLine]) -> LogBatch:
    return LogBatch(
        sandbox_id=SANDBOX,
        lines=[
            LogLine(seq=first_seq + i, stream=line.stream, text=line.text, timestamp=line.ts)
            for i, line in enumerate(lines)
        ],
    )


def test_encoded_batch_is_the_model_readers_parse() -> None:
    lines = stored(TEXTS)
    encoded = encode_batch(SANDBOX, 41, lines)
    assert LogBatch.model_validate_json(encoded) == model_of(41, lines)
    # The same JSON document pydantic writes, apart from how a timestamp's fraction is spelt.
    ours, theirs = json.loads(encoded), json.loads(model_of(41, lines).to_bytes())
    for line in ours["lines"] + theirs["lines"]:
        line["timestamp"] = datetime.fromisoformat(line["timestamp"])
    assert ours == theirs


def test_split_ranges_cover_every_line_once_in_order() -> None:
    lines = stored(["y" * 3000] * 200)
    groups = split_for_messages(lines, max_text_bytes=64 * 1024)
    assert len(groups) > 1
    assert [i for group in groups for i in group] == list(range(200))
    assert split_for_messages(lines[:3], max_text_bytes=64 * 1024) == [range(3)]


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frames_become_lines_as_docker_wrote_them() -> None:
    ts = b"2026-12-02T05:43:03.123456789Z"
    body = b"".join(
        [
            frame(1, ts + b" hello\n"),
            frame(2, ts + b" windows\r\n"),
            frame(1, ts + b" nul\x00byte and bad \xff utf-8\n"),
            frame(1, ts + b" no newline (a piece of a long line)"),
            frame(3, ts + b" not the container's output\n"),
            frame(1, ts + b" \n"),
        ]
    )
    decoder = FrameDecoder()
    parser = LineParser(max_line_bytes=1024)
    # Fed in two halves, cut inside a frame: the decoder keeps the rest for the next read.
    lines = parser.parse(decoder.feed(body[:50])) + parser.parse(decoder.feed(body[50:]))
    stamp = datetime(2026, 12, 2, 5, 43, 3, 123456, tzinfo=UTC)
    raw = ts.decode()
    assert lines == [
        RawLine("stdout", "hello", stamp, raw, False),
        RawLine("stderr", "windows", stamp, raw, False),
        RawLine("stdout", "nulbyte and bad \ufffd utf-8", stamp, raw, False),
        RawLine("stdout", "no newline (a piece of a long line)", stamp, raw, True),
        RawLine("stdout", "", stamp, raw, False),
    ]


def test_a_line_past_the_limit_is_cut_into_pieces_never_inside_a_character() -> None:
    ts = b"2026-12-02T05:43:03.5Z"
    text = ("é" * 300).encode()  # 600 bytes of two-byte characters
    lines = LineParser(max_line_bytes=257).parse(FrameDecoder().feed(frame(1, ts + b" " + text + b"\n")))
    assert "".join(line.text for line in lines) == "é" * 300
    assert all(len(line.text.encode()) <= 257 for line in lines)
    assert [line.partial for line in lines] == [True] * (len(lines) - 1) + [False]
    assert {line.ts for line in lines} == {datetime(2026, 12, 2, 5, 43, 3, 500000, tzinfo=UTC)}


def test_docker_timestamps_are_truncated_to_microseconds() -> None:
    last = datetime(2026, 12, 2, 5, 43, 59, 999999, tzinfo=UTC)
    assert parse_timestamp("2026-12-02T05:43:59.9999999Z") == last
    assert parse_timestamp("2026-12-02T05:43:03Z") == datetime(2026, 12, 2, 5, 43, 3, tzinfo=UTC)
    assert parse_timestamp("2026-12-02T05:43:03.1Z") == datetime(2026, 12, 2, 5, 43, 3, 100000, tzinfo=UTC)


def test_published_timestamps_truncate_as_the_stored_ones() -> None:
    for raw in (
        "2026-12-02T05:43:59.9999999Z",
        "2026-12-02T05:43:03Z",
        "2026-12-02T05:43:03.1Z",
        "2026-12-02T06:43:03.25+01:00",  # not Docker's form: through the datetime
    ):
        assert datetime.fromisoformat(json_timestamp(raw)) == parse_timestamp(raw)
        assert json_timestamp(raw).endswith("Z")


def test_the_socket_writes_live_and_stored_lines_alike() -> None:
    """The logs socket writes a line's JSON by hand, from a live `LogBatch` (Docker's timestamp
    text) or from the store (a datetime): both must be the frame `json.dumps` writes of the
    contract's dict, one-line or batch, whatever the text and the timestamp's digits."""
    lines = stored(TEXTS)
    batch = encode_batch(SANDBOX, 7, lines)
    live = [encode_live(line) for line in live_lines(batch)]
    from_store = [
        encode_stored(StoredLine(seq, line.stream, line.text, line.ts))
        for seq, line in enumerate(lines, start=7)
    ]
    assert live == from_store
    expected = [
        json.dumps(log_frame(seq, line.stream, line.text, line.ts), separators=(",", ":"), ensure_ascii=False)
        for seq, line in enumerate(lines, start=7)
    ]
    assert [log_frame_json(text) for _seq, text in live] == expected
    batch_frame = json.loads(log_batch_frame_json([text for _seq, text in live]))
    assert batch_frame["type"] == "logs"
    assert [{"type": "log", **line} for line in batch_frame["lines"]] == [json.loads(e) for e in expected]
    # A malformed message is skipped, never half read.
    assert live_lines(b'{"lines": [{"seq": 1, "stream": "stdin", "text": "", "timestamp": ""}]}') == []
    assert live_lines(b"not json") == []

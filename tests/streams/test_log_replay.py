"""The log shipper's ReplayFilter on the line runs Docker sends when a log file rotates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sbx_log_shipper.frames import RawLine, ReplayFilter

START = datetime(2026, 1, 1, tzinfo=UTC)


def line(n: int, text: str | None = None, stream: str = "stdout", partial: bool = False) -> RawLine:
    ts = START + timedelta(microseconds=n)
    raw = ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    body = text if text is not None else f"line {n}"
    return RawLine(stream=stream, text=body, ts=ts, ts_raw=raw, partial=partial)  # type: ignore[arg-type]


def kept(lines: list[RawLine]) -> list[str]:
    replays = ReplayFilter()
    return [x.text for x in lines if replays.keep(x)]


def test_a_replayed_run_is_dropped_and_what_follows_is_kept() -> None:
    sent = [line(n) for n in range(1, 6)]
    assert kept([*sent, *sent[2:], line(6)]) == [f"line {n}" for n in range(1, 7)]


def test_a_replay_of_only_the_newest_line_is_dropped() -> None:
    sent = [line(n) for n in range(1, 4)]
    assert kept([*sent, sent[-1], line(4)]) == ["line 1", "line 2", "line 3", "line 4"]


def test_identical_pieces_sharing_a_timestamp_are_all_kept() -> None:
    """Docker cuts a line longer than 16 KiB into pieces stamped alike; two can be identical."""
    piece = line(1, "x" * 16384, partial=True)
    last = line(1, "x" * 7232)
    whole = ["line 0", piece.text, piece.text, last.text]
    assert kept([line(0), piece, piece, last]) == whole
    assert kept([line(0), piece, piece, last, last, line(2)]) == [*whole, "line 2"]


def test_a_new_line_stamped_like_the_newest_is_kept() -> None:
    first = line(1)
    same_microsecond = RawLine(stream="stdout", text="other", ts=first.ts, ts_raw=first.ts_raw[:-4] + "999Z")
    assert kept([first, same_microsecond]) == ["line 1", "other"]


def test_a_line_out_of_order_between_streams_is_kept() -> None:
    assert kept([line(1), line(3), line(2, stream="stderr")]) == ["line 1", "line 3", "line 2"]


def test_a_run_that_diverges_keeps_the_new_line() -> None:
    sent = [line(n) for n in range(1, 5)]
    assert kept([*sent, sent[1], line(9, "new")]) == ["line 1", "line 2", "line 3", "line 4", "new"]

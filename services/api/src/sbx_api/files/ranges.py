"""`Range: bytes=...` of a download: one range is honoured; several, or a malformed header, are
ignored (the whole file is sent), as RFC 9110 allows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ByteRange:
    start: int
    length: int
    unsatisfiable: bool = False


def parse_range(header: str | None, size: int) -> ByteRange | None:
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[len("bytes=") :].strip().partition("-")
    if not sep or not (first.isdigit() or (not first and last.isdigit())):
        return None
    if last and not last.isdigit():
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            return ByteRange(0, 0, unsatisfiable=True)
        start = max(size - suffix, 0)
        return ByteRange(start, size - start) if size else ByteRange(0, 0, unsatisfiable=True)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        return ByteRange(0, 0, unsatisfiable=True)
    return ByteRange(start, end - start + 1)

"""A service's processes: the API runs as a parent and its workers, so what a service uses is
the sum over its process tree."""

from __future__ import annotations

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    """`pid` and its descendants now (none when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its descendants together."""
    total = 0
    for process in _tree(pid):
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its descendants (the API's workers, the PostgreSQL
    backends) so far."""
    total = 0.0
    for process in _tree(pid):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total

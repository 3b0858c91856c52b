"""A service's processes: the API runs as a parent and its workers, so what a service uses is
the sum over its process tree."""

from __future__ import annotations

import psutil


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its descendants together."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total

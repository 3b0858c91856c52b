"""`make bench`: every benchmark, one after the other, printing one table each."""

from __future__ import annotations

import importlib
import os
import platform
import sys

MODULES = [
    "bench.requests",
    "bench.lifecycle",
    "bench.create",
    "bench.pause",
    "bench.breakdown",  # where a lifecycle request's time goes, stage by stage
    "bench.logs",
    "bench.terminal",
    "bench.collector",
    "bench.webhooks",
    "bench.snapvol",
    "bench.scale",  # SBX_BENCH_SCALE_SANDBOXES sandboxes (default 300; `make bench SCALE_SANDBOXES=50`)
    "bench.agent",
    "bench.files",
    "bench.ports",
    "bench.bus",
    "bench.placement",
]


def main() -> None:
    only = sys.argv[1:]
    print(
        f"# Benchmarks\n\nMachine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.platform()}\n"
    )
    for name in MODULES:
        if only and name.split(".")[-1] not in only:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(f"{name}: not available ({exc})\n")
            continue
        print(module.run(), flush=True)


if __name__ == "__main__":
    main()

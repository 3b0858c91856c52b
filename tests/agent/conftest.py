"""Fixtures of the agent tests: an image with no shell at all."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.docker import remove_image, run_build

# A FROM-scratch image holding one static binary and nothing else: no /bin/sh, no libc, no
# applet links (busybox runs an applet only when asked by name: `busybox echo`).
NO_SHELL_DOCKERFILE = """
FROM scratch
COPY tool /opt/busybox
CMD ["/opt/busybox", "sleep", "3600"]
"""


@pytest.fixture(scope="session")
def no_shell_image() -> Iterator[str]:
    tag = f"sbx-test-noshell:{uuid.uuid4().hex[:10]}"
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(busybox, Path(context) / "tool")
        (Path(context) / "Dockerfile").write_text(NO_SHELL_DOCKERFILE)
        run_build(["-t", tag, context])
    yield tag
    remove_image(tag)

"""The agent's binary and the Docker named volume that carries it into every sandbox.

The volume is named after the binary's content (`sbx-agent-<first 12 hex of its SHA-256>`), so a
new build gets a new volume and sandboxes made before keep the one they were made with. It is
filled without a shell or a host mount: a FROM-scratch image holding only `/.sbx/sbx-agent` is
imported (its tarball made here), and a container of it is created, never started, with the
empty volume mounted at `/.sbx`: Docker copies the image's content at the mount point into an
empty named volume when the container is created. The container is then removed. Repeating it
is harmless (Docker copies only into an empty volume), so every start-up does it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from docker.types import Mount
from sbx_common import labels

from sbx_orchestrator.engine.containers import AGENT_LABEL, AgentMount
from sbx_orchestrator.engine.containers import AGENT_MOUNT_POINT as MOUNT_POINT
from sbx_orchestrator.engine.docker_engine import DockerEngine

VOLUME_PREFIX = "sbx-agent-"
IMAGE_REPOSITORY = "sbx-agent"


@dataclass(frozen=True)
class AgentBinary:
    content: bytes

    @classmethod
    def load(cls, path: Path) -> AgentBinary:
        return cls(path.read_bytes())

    @functools.cached_property
    def digest(self) -> str:
        """The build's short name: 12 hex digits of the binary's SHA-256 (computed once: hashing
        the 2-3 MB binary took milliseconds of the event loop, three times per create)."""
        return hashlib.sha256(self.content).hexdigest()[:12]

    @property
    def volume(self) -> str:
        return VOLUME_PREFIX + self.digest

    @property
    def image(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.digest}"

    def rootfs_tar(self) -> bytes:
        """The image's whole filesystem: `/.sbx/` and the binary in it, owned by root, 0755."""
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            folder = tarfile.TarInfo(".sbx")
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
            entry = tarfile.TarInfo(".sbx/sbx-agent")
            entry.size, entry.mode = len(self.content), 0o755
            tar.addfile(entry, io.BytesIO(self.content))
        return out.getvalue()

    def mount(self) -> AgentMount:
        return AgentMount(volume=self.volume, digest=self.digest)


async def ensure_volume(engine: DockerEngine, binary: AgentBinary, instance: str) -> None:
    """The named volume holding this build, filled (see the module docstring)."""
    api = engine.api
    if not await engine.has_image(binary.image):
        repository, _, tag = binary.image.partition(":")
        await engine.call(
            "agent_import", api.import_image_from_data, binary.rootfs_tar(), repository=repository, tag=tag
        )
    volume_labels = {labels.PLATFORM: labels.PLATFORM_VALUE, AGENT_LABEL: binary.digest}
    await engine.call("agent_volume", api.create_volume, binary.volume, labels=volume_labels)
    filler = await engine.call(
        "agent_fill",
        api.create_container,
        binary.image,
        command=[f"{MOUNT_POINT}/sbx-agent", "version"],
        name=f"sbx-agent-fill-{uuid.uuid4().hex[:12]}",
        labels={labels.PLATFORM: labels.PLATFORM_VALUE, labels.INSTANCE: instance},
        host_config=api.create_host_config(mounts=[Mount(MOUNT_POINT, binary.volume, type="volume")]),
    )
    await engine.remove(str(filler["Id"]))

"""Volumes on the host: one ext4 filesystem image per volume, loop-mounted at a directory of the
platform's own and bind-mounted into the containers that use it.

Why a filesystem image and not a plain directory or a Docker volume: this host's filesystem is
ext4 without project quotas, so neither a directory nor Docker's `local` volume driver can hold a
size limit. A sparse file formatted as ext4 and mounted with `-o loop` can: writing past its size
fails inside the sandbox with "No space left on device", and only the space really written is
used on the host. The paths are derived from the volume id only (`<root>/<id>/fs.img`,
`<root>/<id>/mnt`), never from anything a user sent. A loop mount belongs to the kernel, so it
outlives an orchestrator restart; after a host reboot, `ensure` mounts the image again before a
container that uses it starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
IMAGE_FILE = "fs.img"
MOUNT_DIR = "mnt"


class VolumeError(Exception):
    """A host command on a volume failed."""


def volume_dir(root: Path, volume_id: uuid.UUID) -> Path:
    return root / str(volume_id)


def volume_mount_point(root: Path, volume_id: uuid.UUID) -> Path:
    return volume_dir(root, volume_id) / MOUNT_DIR


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise VolumeError(f"{argv[0]} failed: {result.stderr.strip()[:300]}")


def ensure(root: Path, volume_id: uuid.UUID, size_mib: int) -> None:
    """The volume's image exists (made on first use) and is mounted at its mount point."""
    directory = volume_dir(root, volume_id)
    image = directory / IMAGE_FILE
    mount_point = directory / MOUNT_DIR
    mount_point.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.path.ismount(mount_point):
        return
    fresh = not image.exists()
    if fresh:
        partial = directory / f"{IMAGE_FILE}.new"
        with partial.open("wb") as handle:
            handle.truncate(size_mib * MIB)  # sparse: host space is used only as it is written
        try:
            # No reserved blocks: the whole size is the sandbox's.
            _run("mkfs.ext4", "-F", "-q", "-m", "0", str(partial))
        except VolumeError:
            partial.unlink(missing_ok=True)
            raise
        partial.rename(image)
    _run("mount", "-o", "loop,nosuid,nodev", str(image), str(mount_point))
    if fresh:
        # Writable whatever user the sandbox's image runs as.
        os.chmod(mount_point, 0o1777)  # noqa: S103
    logger.info("volume mounted", extra={"volumeId": str(volume_id), "sizeMiB": size_mib})


def used_bytes(root: Path, volume_id: uuid.UUID) -> int | None:
    """Bytes in use on the volume's filesystem (None when it is not mounted)."""
    mount_point = volume_mount_point(root, volume_id)
    if not os.path.ismount(mount_point):
        return None
    stat = os.statvfs(mount_point)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def remove(root: Path, volume_id: uuid.UUID) -> None:
    """Unmount the volume (its loop device goes with it) and delete its image and directory."""
    directory = volume_dir(root, volume_id)
    mount_point = directory / MOUNT_DIR
    if os.path.ismount(mount_point):
        _run("umount", str(mount_point))
    shutil.rmtree(directory, ignore_errors=True)
    logger.info("volume removed", extra={"volumeId": str(volume_id)})

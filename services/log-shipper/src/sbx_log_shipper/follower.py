"""Following one sandbox container's logs: read, number, store in batches, publish.

Reading and storing overlap: while one batch is being written, the next accumulates, so under
load batches grow by themselves (group commit) and an idle sandbox's single line is written at
once. Lines read but not yet stored are bounded; past the bound, reading from Docker pauses
(Docker keeps the lines in its log file, so nothing is lost, only delayed).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from nats.js import JetStreamContext
from prometheus_client import Counter
from sbx_common.labels import INSTANCE
from sbx_common.tasks import cancel_and_wait

from sbx_log_shipper.docker_engine import ContainerNotFound, DockerEngine, DockerError
from sbx_log_shipper.frames import FrameDecoder, LineParser, RawLine, ReplayFilter, TtyDecoder
from sbx_log_shipper.publisher import SandboxPublisher
from sbx_log_shipper.store import LineKey, LogStore, Record, line_key

logger = logging.getLogger(__name__)

LINES_STORED = Counter("log_shipper_lines_stored_total", "Log lines stored in PostgreSQL")
STORE_RETRIES = Counter("log_shipper_store_retries_total", "Failed attempts to store a batch of log lines")


@dataclass(frozen=True)
class FollowSettings:
    instance: str
    max_line_bytes: int
    batch_max_lines: int
    batch_linger_seconds: float
    max_pending_lines: int


@dataclass(frozen=True)
class Shared:
    """What every follower uses."""

    docker: DockerEngine
    store: LogStore
    js: JetStreamContext
    max_payload: int
    settings: FollowSettings


class Batcher:
    """Lines of one sandbox on their way to PostgreSQL and then to SBX_LOG."""

    def __init__(
        self, shared: Shared, sandbox_id: uuid.UUID, publisher: SandboxPublisher, next_seq: int
    ) -> None:
        self.shared = shared
        self.sandbox_id = sandbox_id
        self.publisher = publisher
        self.next_seq = next_seq
        self._pending: list[RawLine] = []
        self._has_lines = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._closing = False
        self._pruned_upto = 0
        # Old lines are deleted beside the storing, not in its way: a range delete of a tenth of
        # the retention took as long as storing a batch, and every line behind it waited.
        self._prune: asyncio.Task[None] | None = None
        self._task = asyncio.create_task(self._run(), name=f"store-{sandbox_id}")

    def _log_extra(self, exc: BaseException) -> dict[str, str]:
        return {"sandboxId": str(self.sandbox_id), "error": repr(exc)}

    async def add(self, lines: list[RawLine]) -> None:
        if not lines:
            return
        self._pending.extend(lines)
        self._has_lines.set()
        if len(self._pending) >= self.shared.settings.max_pending_lines:
            self._has_room.clear()
            await self._has_room.wait()

    async def close(self) -> None:
        """Store what is pending, then stop."""
        self._closing = True
        self._has_lines.set()
        try:
            await self._task
        finally:
            if self._prune is not None:
                await asyncio.wait([self._prune])

    async def abort(self) -> None:
        await cancel_and_wait([self._task, self._prune])

    async def _run(self) -> None:
        settings = self.shared.settings
        quiet = True  # nothing was pending: the first line of a burst, worth lingering for
        while True:
            await self._has_lines.wait()
            if not self._pending:
                if self._closing:
                    return
                self._has_lines.clear()
                quiet = True
                continue
            small = len(self._pending) < settings.batch_max_lines
            # Only after a quiet spell: lines that came while the last batch was stored have
            # waited that long already, and under a steady flow the store is the gathering time.
            if settings.batch_linger_seconds and small and quiet and not self._closing:
                await asyncio.sleep(settings.batch_linger_seconds)
            quiet = False
            batch = self._pending[: settings.batch_max_lines]
            del self._pending[: settings.batch_max_lines]
            if len(self._pending) < settings.max_pending_lines:
                self._has_room.set()
            await self._store(batch)

    async def _store(self, batch: list[RawLine]) -> None:
        first = self.next_seq
        sandbox_id = self.sandbox_id
        records: list[Record] = [
            (sandbox_id, seq, line.stream, line.text, line.ts)
            for seq, line in zip(range(first, first + len(batch)), batch, strict=True)
        ]
        last_seq = first + len(batch) - 1
        store = self.shared.store
        delay = 0.1
        while True:
            try:
                await store.append(self.sandbox_id, records, batch[-1].ts_raw)
                break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                STORE_RETRIES.inc()
                logger.warning("storing log lines failed; retrying", extra=self._log_extra(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                # The commit may have happened before the connection broke: never store twice.
                try:
                    if await store.last_seq(self.sandbox_id) >= last_seq:
                        break
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                    continue
        self.next_seq = last_seq + 1
        LINES_STORED.inc(len(records))
        self.publisher.submit(first, batch)
        if self._prune_due() and (self._prune is None or self._prune.done()):
            self._prune = asyncio.create_task(self._prune_while_due(), name=f"prune-{self.sandbox_id}")

    def _prune_due(self) -> bool:
        store = self.shared.store
        return self.next_seq - 1 - self._pruned_upto >= store.retention_lines + store.prune_slack

    async def _prune_while_due(self) -> None:
        """Delete the lines past the retention; again if batches stored meanwhile made it due."""
        store = self.shared.store
        while self._prune_due():
            last_seq = self.next_seq - 1
            try:
                await store.prune(self.sandbox_id, last_seq)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                logger.warning("pruning old log lines failed", extra=self._log_extra(exc))
                return  # the next stored batch tries again
            self._pruned_upto = last_seq - store.retention_lines


class StoredTail:
    """Drops, at the start of a resumed stream, the lines already stored (`ResumePoint.stored`).

    They come first and in order; a line that differs means Docker no longer has them all (its
    files rotated away while no shipper ran): from there on everything is kept, since a line
    stored twice is better than a line lost.
    """

    def __init__(self, sandbox_id: uuid.UUID, stored: list[LineKey]) -> None:
        self.sandbox_id = sandbox_id
        self._stored = stored
        self._next = 0

    def new_lines(self, lines: list[RawLine]) -> list[RawLine]:
        stored = self._stored
        start = 0
        while self._next < len(stored) and start < len(lines):
            line = lines[start]
            if line_key(line.ts, line.stream, line.text) != stored[self._next]:
                logger.warning(
                    "docker no longer sends every stored line; keeping what it sends",
                    extra={"sandboxId": str(self.sandbox_id), "missing": len(stored) - self._next},
                )
                self._next = len(stored)
                break
            self._next += 1
            start += 1
        return lines[start:] if start else lines


class Follower:
    """Follows one sandbox's container for as long as it runs (and again when it restarts)."""

    def __init__(
        self, shared: Shared, sandbox_id: uuid.UUID, container: str, on_exit: Callable[[Follower], None]
    ) -> None:
        self.shared = shared
        self.sandbox_id = sandbox_id
        self.container = container
        self._on_exit = on_exit
        self._poked = False
        self._left = False
        self.publisher = SandboxPublisher(shared.js, sandbox_id, shared.max_payload)
        self.task = asyncio.create_task(self._run(), name=f"follow-{sandbox_id}")

    def _log_extra(self, exc: BaseException) -> dict[str, str]:
        return {"sandboxId": str(self.sandbox_id), "error": repr(exc)}

    def poke(self) -> None:
        """The container (re)started: make sure it is followed again once the current stream ends."""
        self._poked = True

    async def stop(self) -> None:
        await cancel_and_wait([self.task])
        await self.publisher.close()

    async def _run(self) -> None:
        delay = 0.1
        try:
            while True:
                self._poked = False
                started = asyncio.get_running_loop().time()
                try:
                    running = await self._follow()
                except ContainerNotFound:
                    running = False
                except (
                    DockerError,
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    TimeoutError,
                ) as exc:
                    logger.warning("following logs failed; retrying", extra=self._log_extra(exc))
                    running = True
                # No await between this check and unregistering: a poke cannot fall in between,
                # and a start after it gets a follower of its own.
                if not running and not self._poked:
                    self._leave()
                    break
                # Followed again (restarted, or the stream broke), but never in a tight loop.
                if asyncio.get_running_loop().time() - started > 10.0:
                    delay = 0.1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            await self.publisher.drain(5.0)
        finally:
            self._leave()

    def _leave(self) -> None:
        if not self._left:
            self._left = True
            self._on_exit(self)

    async def _follow(self) -> bool:
        """Follow the log stream until it ends; returns whether the container still runs."""
        docker = self.shared.docker
        info = await docker.inspect(self.container)
        labels = info.get("Config", {}).get("Labels") or {}
        if labels.get(INSTANCE) != self.shared.settings.instance:
            return False
        tty = bool(info.get("Config", {}).get("Tty"))
        resume = await self.shared.store.resume_point(self.sandbox_id)
        decoder: FrameDecoder | TtyDecoder = TtyDecoder() if tty else FrameDecoder()
        parser = LineParser(self.shared.settings.max_line_bytes)
        tail = StoredTail(self.sandbox_id, resume.stored)
        replays = ReplayFilter()
        batcher = Batcher(self.shared, self.sandbox_id, self.publisher, resume.next_seq)
        try:
            async for chunk in docker.logs(self.container, resume.since):
                lines = replays.new_lines(parser.parse(decoder.feed(chunk)))
                await batcher.add(tail.new_lines(lines))
        except BaseException:
            await batcher.abort()
            raise
        await batcher.close()
        state = (await docker.inspect(self.container)).get("State", {})
        return bool(state.get("Running"))

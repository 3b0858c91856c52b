"""One agent session per running sandbox, opened on first use and reopened after a failure;
closed when the sandbox stops, pauses or is destroyed (`forget`), and all at shutdown.

Whether a container has the agent is read once from its labels (containers made before the
agent, or without its binary, have none: their exec goes through the Docker exec API).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import docker.errors

from sbx_orchestrator.agent.binary import AgentBinary, ensure_volume
from sbx_orchestrator.agent.session import AgentSession, EventHandler
from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.engine.containers import AGENT_LABEL
from sbx_orchestrator.engine.docker_engine import DockerEngine

logger = logging.getLogger(__name__)

LABEL_CACHE_SIZE = 4096
FS_EVENTS = frozenset({"fs", "fsend"})  # a file watch's changes and its end


class AgentPool:
    def __init__(self, settings: OrchestratorSettings, engine: DockerEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.binary: AgentBinary | None = None
        path = settings.agent_binary
        if path is not None and path.is_file():
            self.binary = AgentBinary.load(path)
        elif path is not None:
            logger.warning(
                "the agent binary is missing: sandboxes are made without it", extra={"path": str(path)}
            )
        self._volume_ready = False
        self._volume_seen_at = 0.0  # monotonic time the last look at the volume began
        self._volume_lock = asyncio.Lock()
        self._sessions: dict[uuid.UUID, AgentSession] = {}
        self._opening: dict[uuid.UUID, asyncio.Lock] = {}
        self._has_agent: dict[str, bool] = {}
        # Receive the events of every session: process output, and file watches' changes.
        self.on_event: EventHandler | None = None
        self.on_fs_event: EventHandler | None = None

    async def volume(self) -> AgentBinary | None:
        """The build new containers mount, its volume made and filled once per process; None
        without a binary. A failure is retried at the next container made."""
        if self.binary is None:
            return None
        arrived = time.monotonic()
        async with self._volume_lock:
            # Containers made at once share one look: a look that began after this call came
            # saw the volume as this call would have.
            if self._volume_ready and self._volume_seen_at < arrived:
                looked = time.monotonic()
                if await self._volume_exists(self.binary.volume):
                    self._volume_seen_at = looked
                else:
                    # Removed meanwhile (an operator's clean-up): Docker would make an empty one.
                    self._volume_ready = False
            if not self._volume_ready:
                looked = time.monotonic()
                await ensure_volume(self.engine, self.binary, self.settings.instance)
                self._volume_ready = True
                self._volume_seen_at = looked
                logger.info("agent volume ready", extra={"volume": self.binary.volume})
        return self.binary

    async def _volume_exists(self, name: str) -> bool:
        try:
            await self.engine.call("agent_volume_check", self.engine.api.inspect_volume, name)
        except docker.errors.NotFound:
            return False
        return True

    async def has_agent(self, container_id: str) -> bool:
        if container_id not in self._has_agent:
            info = await self.engine.inspect(container_id)
            found = bool(((info or {}).get("Config") or {}).get("Labels", {}).get(AGENT_LABEL))
            if len(self._has_agent) >= LABEL_CACHE_SIZE:
                del self._has_agent[next(iter(self._has_agent))]
            self._has_agent[container_id] = found
        return self._has_agent[container_id]

    async def session(self, sandbox_id: uuid.UUID, container_id: str) -> AgentSession:
        """The sandbox's open session, opened (the daemon started if needed) when there is none."""
        current = self._sessions.get(sandbox_id)
        if current is not None and not current.closed and current.container_id == container_id:
            return current
        lock = self._opening.setdefault(sandbox_id, asyncio.Lock())
        async with lock:
            current = self._sessions.get(sandbox_id)
            if current is not None and not current.closed and current.container_id == container_id:
                return current
            if current is not None:
                await current.close()
            session = await AgentSession.open(
                self.engine, container_id, hello_within=self.settings.agent_connect_timeout
            )
            session.on_event = self._event
            session.on_close.append(lambda s: self._dropped(sandbox_id, s))
            self._sessions[sandbox_id] = session
        return session

    def _event(self, session: AgentSession, header: dict[str, Any], body: bytes) -> None:
        if header.get("event") in FS_EVENTS:
            if self.on_fs_event is not None:
                self.on_fs_event(session, header, body)
        elif self.on_event is not None:
            self.on_event(session, header, body)

    def _dropped(self, sandbox_id: uuid.UUID, session: AgentSession) -> None:
        if self._sessions.get(sandbox_id) is session:
            del self._sessions[sandbox_id]

    def open_sessions(self) -> dict[uuid.UUID, AgentSession]:
        return dict(self._sessions)

    async def forget(self, sandbox_id: uuid.UUID) -> None:
        """Close the sandbox's session (it stopped, paused or was destroyed)."""
        session = self._sessions.pop(sandbox_id, None)
        self._opening.pop(sandbox_id, None)
        if session is not None:
            await session.close()

    async def close(self) -> None:
        for sandbox_id in list(self._sessions):
            with contextlib.suppress(Exception):
                await self.forget(sandbox_id)

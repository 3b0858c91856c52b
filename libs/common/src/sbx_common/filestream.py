"""File bytes between the API and the orchestrator over core NATS, with flow control.

A transfer has two subjects, `sbx.files.<id>.up` (API -> orchestrator) and `.down` (back). Each
side subscribes to the one it receives on and publishes on the other; every frame carries its
kind in the `Sbx-Kind` header:

- `data`: at most CHUNK bytes, a little under NATS' default max_payload of 1 MiB (which counts
  the headers too; a server with a smaller one gets frames that fit it);
- `credit`: the receiver has consumed (written on, or sent to its client) N data frames in all;
- `end`: the sender has no more data (an upload's result comes back as a `result` frame);
- `result`: the final FilesReply of a transfer, as JSON;
- `cancel`: the other side gave up (its client left, or it failed); the transfer ends at once.

A sender never has more than WINDOW data frames unconsumed, so neither side ever buffers more
than WINDOW x CHUNK bytes (4 MiB) per transfer, whatever the speed of the other. A side that hears
nothing for `idle_timeout` seconds (the other side died, or lost NATS) ends the transfer with
`TransferAborted`, so nothing waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

# Frames as large as NATS takes: every frame costs both Python services a callback, a header
# parse and a publish, which at 256 KiB bounded a transfer near 0.2x `docker cp`.
CHUNK = 1024 * 1024 - 4096
HEADROOM = 4096  # room for the frame's headers within the server's max_payload
WINDOW = 4
IDLE_TIMEOUT = 30.0
KIND = "Sbx-Kind"


class TransferAborted(Exception):
    """The other side cancelled, went silent, or broke the protocol."""


class PeerFinished(Exception):
    """The other side sent its result while this side was still sending (e.g. an upload that
    failed early: the disk is full); the result is the next frame to receive."""


@dataclass(frozen=True)
class Frame:
    kind: str  # "data" | "end" | "result"
    data: bytes


class Channel:
    """One side of a transfer: sends on `send_subject`, receives on `recv_subject`."""

    def __init__(
        self,
        nc: NatsClient,
        send_subject: str,
        recv_subject: str,
        *,
        window: int = WINDOW,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.nc = nc
        self.send_subject = send_subject
        self.recv_subject = recv_subject
        self.window = window
        self.chunk = max(min(CHUNK, nc.max_payload - HEADROOM), 1024)
        self.idle_timeout = idle_timeout
        self._subscription: Subscription | None = None
        # Bounded by the peer's window; a peer sending past it breaks the protocol.
        self._frames: asyncio.Queue[Frame] = asyncio.Queue()
        self._sent = 0
        self._acked = 0
        self._consumed = 0
        self._credited = 0
        self._credit = asyncio.Event()
        self._aborted: str | None = None
        self._peer_finished = False

    async def open(self) -> None:
        if self._subscription is not None:
            return
        self._subscription = await self.nc.subscribe(self.recv_subject, cb=self._on_message)

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_message(self, msg: Msg) -> None:
        kind = (msg.headers or {}).get(KIND, "")
        if kind == "credit":
            with contextlib.suppress(ValueError):
                self._acked = max(self._acked, int(msg.data or b"0"))
            self._credit.set()
        elif kind == "cancel":
            self._abort("the other side cancelled the transfer")
        elif kind in ("data", "end", "result"):
            if self._frames.qsize() > self.window + 2:
                self._abort("the other side sent past its window")
                return
            self._frames.put_nowait(Frame(kind, msg.data))
            if kind == "result":
                self._peer_finished = True
                self._credit.set()

    def _abort(self, reason: str) -> None:
        if self._aborted is None:
            self._aborted = reason
        self._credit.set()
        self._frames.put_nowait(Frame("cancel", b""))

    @property
    def aborted(self) -> bool:
        return self._aborted is not None

    async def _publish(self, kind: str, data: bytes = b"") -> None:
        try:
            await self.nc.publish(self.send_subject, data, headers={KIND: kind})
        except nats.errors.Error as exc:
            raise TransferAborted(f"NATS refused a frame: {exc!r}") from exc

    async def send(self, data: bytes | bytearray) -> None:
        """Send bytes (split into frames of `chunk`), waiting for credit when the window is full."""
        for start in range(0, max(len(data), 1), self.chunk):
            while self._sent - self._acked >= self.window:
                if self._aborted is not None:
                    raise TransferAborted(self._aborted)
                if self._peer_finished:
                    raise PeerFinished
                self._credit.clear()
                try:
                    await asyncio.wait_for(self._credit.wait(), self.idle_timeout)
                except TimeoutError:
                    self._abort("the other side stopped consuming")
            if self._aborted is not None:
                raise TransferAborted(self._aborted)
            if self._peer_finished:
                raise PeerFinished
            await self._publish("data", bytes(data[start : start + self.chunk]))
            self._sent += 1

    async def send_parts(self, parts: Sequence[bytes | bytearray]) -> None:
        """Send pieces that together fit one frame, as one frame."""
        await self.send(b"".join(parts))

    async def end(self) -> None:
        await self._publish("end")

    async def result(self, payload: bytes) -> None:
        await self._publish("result", payload)

    async def cancel(self) -> None:
        """Tell the other side to stop (best effort: it times out anyway)."""
        self._abort("cancelled here")
        with contextlib.suppress(TransferAborted):
            await self._publish("cancel")

    async def receive(self) -> Frame:
        """The next frame; consuming a data frame grants the sender credit for another."""
        try:
            frame = await asyncio.wait_for(self._frames.get(), self.idle_timeout)
        except TimeoutError:
            self._abort("the other side went silent")
            raise TransferAborted("the other side went silent") from None
        if frame.kind == "cancel":
            raise TransferAborted(self._aborted or "cancelled")
        if frame.kind == "data":
            self._consumed += 1
            # Credit in batches of half a window: fewer messages, the pipe never runs dry.
            if self._consumed - self._credited >= max(self.window // 2, 1):
                self._credited = self._consumed
                await self._publish("credit", str(self._consumed).encode())
        return frame

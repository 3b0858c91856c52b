"""`/ws/events`: the caller's sandbox events over a WebSocket.

`?since=<event id>` resumes right after that event; without it, only events from now on. The
feed's consumer is deleted as soon as the client goes away.
"""

from __future__ import annotations

import asyncio
import json

from sbx_common import subjects
from sbx_common.errors import Unavailable
from starlette.websockets import WebSocket

from sbx_api.events import ws
from sbx_api.events.feed import EventFeed, FeedOverflow, StartAt
from sbx_api.events.schemas import event_object
from sbx_api.state import AppState


async def _send_events(websocket: WebSocket, feed: EventFeed) -> None:
    while True:
        seq, event = await feed.next()
        await websocket.send_text(json.dumps(event_object(seq, event), separators=(",", ":")))


async def serve_events(websocket: WebSocket, state: AppState) -> None:
    async def session() -> None:
        caller = await ws.caller_of(websocket, state)
        since = ws.optional_int_param(websocket, "since", 0, 10**18)
        feed = EventFeed(state.js, subjects.events_of_owner(caller.user_id), StartAt(after_seq=since))
        try:
            await feed.open()
        except Unavailable as exc:
            raise ws.CloseSocket(ws.INTERNAL_ERROR, exc.message) from None
        try:
            sender = asyncio.create_task(_send_events(websocket, feed))
            reader = asyncio.create_task(ws.until_disconnected(websocket, ws.ignore))
            done, pending = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if sender in done:
                try:
                    sender.result()
                except FeedOverflow:
                    raise ws.CloseSocket(ws.TRY_AGAIN_LATER, "The client reads too slowly.") from None
        finally:
            await feed.close()

    await ws.serve(websocket, session)

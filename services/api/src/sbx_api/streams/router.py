"""Routes of the streams domain: event streams (SSE and WebSocket), log tail and terminal sockets.

They keep the OpenAPI tag `events` they were published under."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket
from sbx_common import subjects
from sbx_common.errors import NotFound, ValidationFailed

from sbx_api.deps import Caller, State, authenticate, bearer_token, parse_id
from sbx_api.state import AppState
from sbx_api.streams import repository
from sbx_api.streams.events import EventFeed, EventStreamResponse, StartAt, serve_events
from sbx_api.streams.logs import serve_logs
from sbx_api.streams.terminal import serve_terminal
from sbx_api.usage import CAP_RESPONSE, CapReached, Held

router = APIRouter(tags=["events"])

# WebSocket routes are not operations of an OpenAPI document; what they add to the contract is
# said in the document's description (`sbx_api.app`), where clients' generators and readers see it.
WEBSOCKET_ADDITIONS = """
WebSocket routes are described by the contract, not as operations here. Additions to them:

- `/ws/sandboxes/{id}/logs` accepts `batch=true` (default `false`): log lines then come as
  `{"type": "logs", "lines": [{"seq", "stream", "text", "timestamp"}, ...]}` frames, each
  holding one or more consecutive lines, oldest first (the lines that were ready together, at
  most 1,000 and about 256 KiB of JSON to a frame), instead of one `{"type": "log", ...}` frame
  per line. Status frames, `tail`, `since` and the close codes are the same; any other value
  of `batch` closes the socket with 1008. The SDKs ask for batch frames.
"""

SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A `text/event-stream`: each event as `id: <id>` and `data: <event JSON>`; a "
        "`: subscribed` comment first, `: heartbeat` comments on quiet streams.",
        "content": {"text/event-stream": {}},
    },
    **CAP_RESPONSE,
}
LAST_EVENT_ID_DOC = "Resume right after this event id (the SSE `id:` field); also `?lastEventId=`."


def _after_seq(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationFailed.for_field(name, "Must be an event id (a non-negative integer).")
    return int(value)


async def _sse_caller(request: Request, state: AppState) -> Caller:
    """Bearer header as everywhere; `?token=` too, since browsers' EventSource cannot set headers."""
    return await authenticate(state, bearer_token(request) or request.query_params.get("token"))


async def _event_stream(state: AppState, caller: Caller, feed: EventFeed) -> EventStreamResponse:
    """Open the feed as an SSE response holding one of the caller's stream slots (429 when they
    are all taken) until the response ends."""
    usage, owner = state.usage, caller.user_id
    try:
        await usage.acquire(Held.STREAMS, owner, state.settings.max_streams_per_user)
    except CapReached as exc:
        raise exc.as_error() from None
    try:
        await feed.open()
    except BaseException:
        await usage.release(Held.STREAMS, owner)
        raise

    async def release() -> None:
        await usage.release(Held.STREAMS, owner)

    return EventStreamResponse(feed, state.settings.sse_heartbeat_seconds, on_close=release)


@router.get("/events", response_model=None, responses=SSE_RESPONSES)
async def all_events(
    request: Request,
    state: State,
    last_event_id: Annotated[str | None, Header(description=LAST_EVENT_ID_DOC)] = None,
    last_event_id_query: Annotated[str | None, Query(alias="lastEventId", include_in_schema=False)] = None,
) -> EventStreamResponse:
    """Events of all the caller's sandboxes as server-sent events. Without `Last-Event-ID`, only
    events from now on."""
    caller = await _sse_caller(request, state)
    after = _after_seq(last_event_id or last_event_id_query, "Last-Event-ID")
    feed = EventFeed(state.js, subjects.events_of_owner(caller.user_id), StartAt(after_seq=after))
    return await _event_stream(state, caller, feed)


@router.get("/sandboxes/{sandbox_id}/events", response_model=None, responses=SSE_RESPONSES)
async def sandbox_events(
    sandbox_id: str,
    request: Request,
    state: State,
    last_event_id: Annotated[str | None, Header(description=LAST_EVENT_ID_DOC)] = None,
    last_event_id_query: Annotated[str | None, Query(alias="lastEventId", include_in_schema=False)] = None,
) -> EventStreamResponse:
    """One sandbox's events as server-sent events. Without `Last-Event-ID`, its whole retained
    history first (so a late subscriber still sees how it got where it is), then live ones."""
    caller = await _sse_caller(request, state)
    sid = parse_id(sandbox_id)
    async with state.pool.acquire() as conn:
        if await repository.sandbox_status(conn, sid, caller.user_id) is None:
            raise NotFound("No such sandbox.")
    after = _after_seq(last_event_id or last_event_id_query, "Last-Event-ID")
    start = StartAt(after_seq=after, everything=after is None)
    feed = EventFeed(state.js, subjects.events_of_sandbox(caller.user_id, sid), start)
    return await _event_stream(state, caller, feed)


@router.websocket("/ws/events")
async def events_socket(websocket: WebSocket, state: State) -> None:
    await serve_events(websocket, state)


@router.websocket("/ws/sandboxes/{sandbox_id}/logs")
async def logs_socket(websocket: WebSocket, sandbox_id: str, state: State) -> None:
    await serve_logs(websocket, state, sandbox_id)


@router.websocket("/ws/sandboxes/{sandbox_id}/terminal")
async def terminal_socket(websocket: WebSocket, sandbox_id: str, state: State) -> None:
    await serve_terminal(websocket, state, sandbox_id)

"""HTTP transports: run a `Call` with retries (httpx's sync client, and its async client).

The two classes are the same loop; only the I/O differs (`time.sleep` / `asyncio.sleep`,
`httpx.Client` / `httpx.AsyncClient`). The decisions live in `_core`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from sandbox_platform._core import (
    IDEMPOTENCY_HEADER,
    STREAM_READ_TIMEOUT,
    Answer,
    Call,
    ClientConfig,
    clean_params,
    connection_error,
    decode,
    page_items,
    result_of,
    retry_answer,
    retry_failure,
)

T = TypeVar("T")


def _request_args(
    config: ClientConfig, call: Call[Any], key: str | None, cursor: str | None
) -> dict[str, Any]:
    params = clean_params(call.params)
    if cursor is not None:
        params["cursor"] = cursor
    headers = dict(config.headers)
    if key is not None:
        headers[IDEMPOTENCY_HEADER] = key
    if call.authenticated:
        headers.update(config.credentials.headers())
    args: dict[str, Any] = {
        "params": params,
        "headers": headers,
        "timeout": call.timeout(config.timeout),
    }
    if call.body is not None:
        args["json"] = call.body
    if call.content is not None:
        args["content"] = call.content
        headers["Content-Type"] = "application/octet-stream"
    return args


def _stream_timeout(config: ClientConfig) -> httpx.Timeout:
    return httpx.Timeout(STREAM_READ_TIMEOUT, connect=config.timeout.connect)


class SyncTransport:
    """Runs calls with `httpx.Client`, retrying as the call's rule allows."""

    def __init__(self, config: ClientConfig, http_client: httpx.Client | None = None) -> None:
        self.config = config
        self._owns_http = http_client is None
        self.http = http_client or httpx.Client(timeout=config.timeout)

    def send(self, call: Call[Any], cursor: str | None = None) -> Answer:
        """One call, retried; the last answer (errors included) or a connection error."""
        key = call.new_idempotency_key()
        attempt = 0
        while True:
            try:
                response = self.http.request(
                    call.method, self.config.url(call.path), **_request_args(self.config, call, key, cursor)
                )
            except httpx.TransportError as exc:
                delay = retry_failure(self.config.retry, call, attempt, exc)
                if delay is None:
                    raise connection_error(exc, self.config.base_url) from exc
            else:
                answer = decode(response)
                delay = retry_answer(self.config.retry, call, attempt, answer)
                if delay is None:
                    return answer
            time.sleep(delay)
            attempt += 1

    def request(self, call: Call[T]) -> T:
        """The call's result, or its typed error."""
        return result_of(call, self.send(call))

    def iterate(self, call: Call[T]) -> Iterator[T]:
        """Every item of a list, page after page (`nextCursor`)."""
        cursor: str | None = None
        while True:
            answer = self.send(call, cursor)
            if answer.status >= 400:
                raise answer.error()
            items, cursor = page_items(answer.body)
            yield from (call.parse(item) for item in items)
            if cursor is None:
                return

    @contextlib.contextmanager
    def stream(self, path: str, headers: Mapping[str, str]) -> Iterator[httpx.Response]:
        """A streamed GET (server-sent events); a refusal raises its typed error."""
        request_headers = {
            **self.config.headers,
            "Accept": "text/event-stream",
            **self.config.credentials.headers(),
            **headers,
        }
        with self.http.stream(
            "GET", self.config.url(path), headers=request_headers, timeout=_stream_timeout(self.config)
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise decode(response).error()
            yield response

    def close(self) -> None:
        """Close the connection pool (when this transport made it)."""
        if self._owns_http:
            self.http.close()


class AsyncTransport:
    """Runs calls with `httpx.AsyncClient`, retrying as the call's rule allows."""

    def __init__(self, config: ClientConfig, http_client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._owns_http = http_client is None
        self.http = http_client or httpx.AsyncClient(timeout=config.timeout)

    async def send(self, call: Call[Any], cursor: str | None = None) -> Answer:
        """One call, retried; the last answer (errors included) or a connection error."""
        key = call.new_idempotency_key()
        attempt = 0
        while True:
            try:
                response = await self.http.request(
                    call.method, self.config.url(call.path), **_request_args(self.config, call, key, cursor)
                )
            except httpx.TransportError as exc:
                delay = retry_failure(self.config.retry, call, attempt, exc)
                if delay is None:
                    raise connection_error(exc, self.config.base_url) from exc
            else:
                answer = decode(response)
                delay = retry_answer(self.config.retry, call, attempt, answer)
                if delay is None:
                    return answer
            await asyncio.sleep(delay)
            attempt += 1

    async def request(self, call: Call[T]) -> T:
        """The call's result, or its typed error."""
        return result_of(call, await self.send(call))

    async def iterate(self, call: Call[T]) -> AsyncIterator[T]:
        """Every item of a list, page after page (`nextCursor`)."""
        cursor: str | None = None
        while True:
            answer = await self.send(call, cursor)
            if answer.status >= 400:
                raise answer.error()
            items, cursor = page_items(answer.body)
            for item in items:
                yield call.parse(item)
            if cursor is None:
                return

    @contextlib.asynccontextmanager
    async def stream(self, path: str, headers: Mapping[str, str]) -> AsyncIterator[httpx.Response]:
        """A streamed GET (server-sent events); a refusal raises its typed error."""
        request_headers = {
            **self.config.headers,
            "Accept": "text/event-stream",
            **self.config.credentials.headers(),
            **headers,
        }
        async with self.http.stream(
            "GET", self.config.url(path), headers=request_headers, timeout=_stream_timeout(self.config)
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise decode(response).error()
            yield response

    async def close(self) -> None:
        """Close the connection pool (when this transport made it)."""
        if self._owns_http:
            await self.http.aclose()

"""What the sync and async clients share: settings, the description of a call, retry decisions,
answer decoding and WebSocket addresses. Nothing here does I/O, so both clients run the same rules.
"""

from __future__ import annotations

import dataclasses
import email.utils
import enum
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from sandbox_platform._version import __version__
from sandbox_platform.errors import (
    APIConnectionError,
    APITimeoutError,
    SandboxPlatformError,
    error_from_body,
)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

DEFAULT_BASE_URL = "http://127.0.0.1:3001"
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
# Added to the time the server may take on purpose (`?wait=`, an exec's own timeout).
SERVER_WAIT_MARGIN = 15.0
# The API waits at most this long for a lifecycle call to settle (`?wait=true&timeout=`).
MAX_SERVER_WAIT = 300.0
# SSE streams send a heartbeat every 15 s: a stream quiet for this long is dead.
STREAM_READ_TIMEOUT = 60.0
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = f"sandbox-platform-python/{__version__}"


class Credentials:
    """The bearer token of a client: an API key (`sk_...`) or a JWT from signup/login.

    Shared by the HTTP transport and the sockets, so a login is seen by both."""

    def __init__(self, api_key: str | None = None, token: str | None = None) -> None:
        self.api_key = api_key
        self.token = token

    @property
    def bearer(self) -> str | None:
        """What goes after `Bearer `: the API key if there is one, else the token."""
        return self.api_key or self.token

    def use_token(self, token: str) -> None:
        """Authenticate with this JWT from now on (it replaces an API key)."""
        self.api_key = None
        self.token = token

    def headers(self) -> dict[str, str]:
        """The Authorization header, when there is a credential."""
        bearer = self.bearer
        return {"Authorization": f"Bearer {bearer}"} if bearer else {}


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    `max_retries` retries after the first attempt; the n-th waits about `backoff * 2**n` seconds
    (at most `max_backoff`), spread by jitter so that many clients do not retry in step. A
    `Retry-After` of the API is honoured when it is at most `max_retry_after`."""

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.backoff * 2.0**attempt, self.max_backoff)
        return base / 2 + random.uniform(0, base / 2)  # jitter, not cryptography


class Retry(enum.Enum):
    """How a call may be repeated after a failure."""

    #: Safe to repeat (reads): every connection failure, 503, 429 RATE_LIMITED, 502, 504.
    SAFE = "safe"
    #: Not safe to repeat: only when the request surely did not arrive (no connection), 503, 429.
    ONCE = "once"
    #: Sent with an Idempotency-Key, reused on every retry: as SAFE, and a 409 CONFLICT on a
    #: retry (the first attempt is still being carried out) is waited out.
    LIFECYCLE = "lifecycle"


@dataclass(frozen=True)
class Call(Generic[T_co]):
    """One API call: where it goes, what it sends, how its `data` becomes a result, how it retries."""

    method: str
    path: str
    parse: Callable[[Any], T_co]
    params: Mapping[str, Any] | None = None
    body: Any = None
    retry: Retry = Retry.SAFE
    #: The longest wait for the answer, when the server may take longer than the default on purpose.
    read_timeout: float | None = None
    #: False for the operations routes, whose bodies are plain JSON.
    envelope: bool = True
    #: Error statuses whose body is still the answer (`GET /health` is 503 when degraded).
    accept: frozenset[int] = field(default_factory=frozenset)
    authenticated: bool = True
    #: A raw request body (sent as `application/octet-stream`) instead of `body`'s JSON.
    content: bytes | None = None

    def timeout(self, default: httpx.Timeout) -> httpx.Timeout:
        """The httpx timeout of this call."""
        if self.read_timeout is None:
            return default
        return httpx.Timeout(max(self.read_timeout, default.read or 0.0), connect=default.connect)

    def new_idempotency_key(self) -> str | None:
        """A fresh key for a lifecycle call (the same one is then sent on each retry)."""
        return str(uuid.uuid4()) if self.retry is Retry.LIFECYCLE else None


def clean_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters without the ones left out (None), booleans as the API spells them."""
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


@dataclass
class ClientConfig:
    """Where the API is and how to talk to it; built once per client."""

    base_url: str
    credentials: Credentials
    timeout: httpx.Timeout
    retry: RetryPolicy
    headers: dict[str, str]

    @classmethod
    def create(
        cls,
        base_url: str | None,
        api_key: str | None,
        token: str | None,
        timeout: float | None,
        max_retries: int | None,
        *,
        retry: RetryPolicy | None = None,
    ) -> ClientConfig:
        """Settings from the arguments, else `SBX_API_URL` / `SBX_API_KEY`, else the defaults."""
        url = (base_url or os.environ.get("SBX_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        if api_key is None and token is None:
            api_key = os.environ.get("SBX_API_KEY") or None
        seconds = DEFAULT_TIMEOUT if timeout is None else timeout
        policy = retry or RetryPolicy()
        if max_retries is not None:
            policy = dataclasses.replace(policy, max_retries=max_retries)
        return cls(
            base_url=url,
            credentials=Credentials(api_key=api_key, token=token),
            timeout=httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT, seconds)),
            retry=policy,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def url(self, path: str) -> str:
        """The absolute URL of a route (so that a caller's own httpx client needs no base URL)."""
        return self.base_url + path

    def ws_url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The `ws://` (or `wss://`) address of a socket route."""
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = urlencode(clean_params(params))
        return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, query, ""))

    def ws_headers(self) -> dict[str, str]:
        """Headers of a socket's handshake: the credential goes in a header, never in the URL."""
        return {"User-Agent": USER_AGENT, **self.credentials.headers()}


@dataclass(frozen=True)
class Answer:
    """A decoded HTTP answer."""

    status: int
    body: Any
    headers: httpx.Headers

    @property
    def code(self) -> str | None:
        """The contract's error code, when the body is an error envelope."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return code if isinstance(code, str) else None

    def retry_after(self) -> float | None:
        """`Retry-After` in seconds (a number or an HTTP date), if the API sent one."""
        raw = self.headers.get("retry-after")
        if raw is None:
            return None
        try:
            return float(raw)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(when.timestamp() - time.time(), 0.0)

    def error(self) -> SandboxPlatformError:
        """The typed error of a refused call."""
        return error_from_body(self.status, self.body, self.headers.get("x-trace-id"), self.retry_after())


def decode(response: httpx.Response) -> Answer:
    """The answer's JSON body (None when it has none or is not JSON)."""
    body: Any = None
    if response.content:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
    return Answer(response.status_code, body, response.headers)


def result_of(call: Call[T], answer: Answer) -> T:
    """The call's result, or its typed error."""
    if answer.status >= 400 and answer.status not in call.accept:
        raise answer.error()
    if not call.envelope:
        return call.parse(answer.body)
    if not isinstance(answer.body, dict) or "data" not in answer.body:
        raise SandboxPlatformError("INVALID_RESPONSE", answer.status, "The API's answer has no data.")
    return call.parse(answer.body["data"])


def retry_answer(policy: RetryPolicy, call: Call[Any], attempt: int, answer: Answer) -> float | None:
    """Seconds to wait before retrying after this answer, or None to give it to the caller."""
    if attempt >= policy.max_retries or answer.status < 400 or answer.status in call.accept:
        return None
    code = answer.code
    if answer.status == 503:
        return policy.delay(attempt, answer.retry_after())
    if answer.status == 429:
        if code == "QUOTA_EXCEEDED":
            return None  # waiting does not free a quota
        retry_after = answer.retry_after()
        if retry_after is not None and retry_after > policy.max_retry_after:
            return None
        return policy.delay(attempt, retry_after)
    if answer.status == 409 and code == "CONFLICT" and call.retry is Retry.LIFECYCLE and attempt > 0:
        return policy.delay(attempt)
    if answer.status in (502, 504) and call.retry is not Retry.ONCE:
        return policy.delay(attempt)
    return None


def retry_failure(
    policy: RetryPolicy, call: Call[Any], attempt: int, error: httpx.TransportError
) -> float | None:
    """Seconds to wait before retrying after a transport failure, or None to give up."""
    if attempt >= policy.max_retries:
        return None
    never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if never_sent or call.retry is not Retry.ONCE:
        return policy.delay(attempt)
    return None


def connection_error(error: httpx.TransportError, base_url: str) -> APIConnectionError:
    """The SDK's error for a transport failure that retries did not cure."""
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"The API at {base_url} did not answer in time ({type(error).__name__}).")
    return APIConnectionError(f"Could not reach the API at {base_url}: {error or type(error).__name__}.")


def page_items(answer_body: Any) -> tuple[list[Any], str | None]:
    """The items of a list page and the cursor of the next page (None on the last page)."""
    if not isinstance(answer_body, dict) or not isinstance(answer_body.get("data"), list):
        raise SandboxPlatformError("INVALID_RESPONSE", None, "The API's list answer has no data.")
    cursor = answer_body.get("nextCursor")
    return list(answer_body["data"]), cursor if isinstance(cursor, str) and cursor else None


def server_wait(timeout: float | None) -> tuple[dict[str, Any], float | None]:
    """`?wait=true&timeout=` for a lifecycle call, and how long to wait for its answer."""
    if timeout is None:
        return {}, None
    seconds = min(max(timeout, 0.0), MAX_SERVER_WAIT)
    return {"wait": "true", "timeout": _number(seconds)}, seconds + SERVER_WAIT_MARGIN


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"

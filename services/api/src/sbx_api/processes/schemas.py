"""Bodies of the processes domain."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from sbx_api.environments.schemas import EnvMap
from sbx_api.schemas import ApiModel, RequestModel, Timestamp

Signal = Literal["TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2"]
ProcessStatus = Literal["running", "exited", "killed"]
TIMEOUT_MAX = 7 * 24 * 3600.0
Dimension = Annotated[int, Field(ge=1, le=1000, strict=True)]


class CreateProcessRequest(RequestModel):
    """`command` as a string runs through `sh -c`; as a list it runs as is (no shell). `tty`
    gives it a terminal of `cols` x `rows` (its output is then one stream, `pty`); `stdin` keeps
    its standard input open for `POST .../stdin` and the socket (always, with a terminal).
    `timeoutSeconds` kills it (status `killed`) when it runs longer."""

    command: (
        Annotated[str, StringConstraints(min_length=1, max_length=64 * 1024)]
        | Annotated[
            list[Annotated[str, StringConstraints(max_length=64 * 1024)]],
            Field(min_length=1, max_length=4096),
        ]
    )
    env: EnvMap = Field(default_factory=dict)
    workdir: Annotated[str, StringConstraints(pattern=r"^/", max_length=4096)] | None = None
    tty: bool = False
    cols: Dimension = 80
    rows: Dimension = 24
    timeout_seconds: Annotated[float, Field(gt=0, le=TIMEOUT_MAX)] | None = None
    stdin: bool = False

    @field_validator("command")
    @classmethod
    def _program_named(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value[0]:
            raise ValueError("the first element (the program) must not be empty")
        if isinstance(value, str) and not value.strip():
            raise ValueError("the command must not be blank")
        return value

    def argv(self) -> list[str]:
        return ["sh", "-c", self.command] if isinstance(self.command, str) else list(self.command)


class SignalRequest(RequestModel):
    signal: Signal


class ResizeRequest(RequestModel):
    cols: Dimension
    rows: Dimension


class ProcessOut(ApiModel):
    """`pid` is the process id inside the sandbox; `signal` the signal that ended it, if one did.
    `killed`: ended by its timeout, or by its sandbox stopping, restarting or going away."""

    id: uuid.UUID
    sandbox_id: uuid.UUID
    command: list[str]
    pid: int | None
    tty: bool
    status: ProcessStatus
    exit_code: int | None
    signal: str | None
    started_at: Timestamp
    ended_at: Timestamp | None


class OutputChunkOut(ApiModel):
    """One piece of output: `text` (UTF-8, invalid bytes replaced) or, with `encoding=base64`,
    `data` (the exact bytes)."""

    seq: int
    stream: Literal["stdout", "stderr", "pty"]
    text: str | None = None
    data: str | None = None
    timestamp: Timestamp


class OutputPage(ApiModel):
    """`GET .../output`: `data` the chunks after `since`; `nextSince` the `since` of the next
    call; `truncatedBefore` the oldest seq still kept when older output was dropped (null when
    all of it is kept)."""

    success: bool = True
    data: list[OutputChunkOut]
    next_since: int
    truncated_before: int | None


class StdinWritten(ApiModel):
    written: int

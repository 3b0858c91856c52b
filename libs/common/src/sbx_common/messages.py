"""Commands and events on NATS: frozen, versioned pydantic models.

A breaking change gets a new `version` (and a new model), never an edited old one. Commands
carry ids only: the orchestrator reads everything else (and the secrets) from PostgreSQL, so no
plaintext secret ever enters a stream.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sbx_common.codes import RpcErrorCode, TerminalEndReason
from sbx_common.status import Status, Verb
from sbx_common.timeutil import utcnow


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class SandboxCommand(Message):
    """An order to the orchestrator: `sbx.cmd.<hostId>.sandbox.<verb>`; `id` is also `Nats-Msg-Id`."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str = ""
    version: Literal[1] = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    verb: Verb
    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    # Why the command was issued when not by the user: a `codes.CommandReason`, or the reason
    # of a `fail` command.
    reason: str | None = None
    trace_id: str | None = None
    # The snapshot of `snapshot` and `snapshot_delete`, the volume of `volume_delete`.
    snapshot_id: uuid.UUID | None = None
    volume_id: uuid.UUID | None = None
    # The host whose orchestrator carries it out (the sandbox's, or the snapshot's or volume's);
    # also in the subject. Added field: a command without it is the single host's.
    host_id: str = "local"

    def model_post_init(self, __context: Any) -> None:
        if not self.type:
            object.__setattr__(self, "type", f"sandbox.{self.verb.value}")


class SandboxEvent(Message):
    """A fact: `sbx.evt.<ownerId>.<sandboxId>.<status>`, type `sandbox.<status>`."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str = ""
    version: Literal[1] = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    status: Status
    reason: str | None = None
    command_id: uuid.UUID | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        if not self.type:
            object.__setattr__(self, "type", f"sandbox.{self.status.value}")


class DeadLetter(Message):
    """A command that could not be handled after every retry: `sbx.dlq.<verb>`."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: Literal["command.dead_lettered"] = "command.dead_lettered"
    version: Literal[1] = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    command: SandboxCommand
    error: str
    deliveries: int


class ExecRequest(Message):
    """Request on `sbx.rpc.exec` (core NATS request/reply)."""

    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    command: list[str]
    timeout_seconds: float = 30.0
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    trace_id: str | None = None


class ExecResult(Message):
    """Reply to an ExecRequest. `error` is set (with a contract code) when nothing ran."""

    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: int = 0
    timed_out: bool = False
    error_code: RpcErrorCode | None = None
    error_message: str | None = None


ProcessOp = Literal["create", "stdin", "signal", "resize"]


class ProcessRequest(Message):
    """Request on `sbx.rpc.process` (core NATS request/reply): start a background process, or
    write to, signal or resize one. `process_id` is chosen by the API (a repeat is harmless)."""

    op: ProcessOp
    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    process_id: uuid.UUID
    command: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    tty: bool = False
    cols: int = 80
    rows: int = 24
    timeout_seconds: float | None = None
    stdin: bool = False
    data: str = ""  # stdin bytes, base64
    eof: bool = False
    signal: str | None = None
    trace_id: str | None = None


class ProcessReply(Message):
    """Reply to a ProcessRequest; `error_code` set when nothing was done."""

    written: int = 0
    error_code: RpcErrorCode | None = None
    error_message: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class ProcessOutput(Message):
    """On `sbx.proc.<sandboxId>.<processId>` after it is stored: one chunk of output (`kind`
    "output", numbered per process without gaps) or the process's end (`kind` "exit")."""

    process_id: uuid.UUID
    kind: Literal["output", "exit"]
    seq: int = 0
    stream: Literal["stdout", "stderr", "pty"] | None = None
    data: str = ""  # base64
    timestamp: datetime | None = None
    status: str | None = None
    exit_code: int | None = None
    signal: str | None = None


class TerminalOpenRequest(Message):
    """Request on `sbx.rpc.terminal.open`; the reply is a TerminalOpenReply."""

    session_id: str
    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    cols: int = 80
    rows: int = 24


class TerminalOpenReply(Message):
    ok: bool
    error_code: RpcErrorCode | None = None
    error_message: str | None = None


class FileWatchOpenRequest(Message):
    """Request on `sbx.rpc.fswatch.open`; the reply is a FileWatchOpenReply."""

    watch_id: str
    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    path: str
    recursive: bool = False


class FileWatchOpenReply(Message):
    ok: bool
    path: str | None = None  # the directory watched, symlinks resolved
    error_code: RpcErrorCode | None = None
    error_message: str | None = None


class FileWatchFrame(Message):
    """One message on `sbx.fswatch.<watchId>.out`: a change (`created`, `modified`, `deleted`,
    `moved`), `overflow` (changes were dropped), or `end` with the reason the watch ended
    (`stopped`: the sandbox stopped or paused, or its agent went away; `deleted`: the directory
    went; `idle`: the API stopped sending keepalives; `closed`)."""

    type: Literal["created", "modified", "deleted", "moved", "overflow", "end"]
    path: str | None = None
    from_path: str | None = None
    is_dir: bool = False
    timestamp: datetime | None = None
    reason: str | None = None


class FileWatchControl(Message):
    """On `sbx.fswatch.<watchId>.ctl` from the API: `keepalive` (sent as a request and answered)
    or `close`."""

    type: Literal["keepalive", "close"]


class LogLine(Message):
    """One line a sandbox printed, numbered per sandbox (`seq` 1, 2, 3, ... without gaps)."""

    seq: int
    stream: Literal["stdout", "stderr"]
    text: str
    timestamp: datetime  # Docker's timestamp of the line (microsecond precision)


class LogBatch(Message):
    """Consecutive lines of one sandbox on `sbx.log.<sandboxId>`.

    Published by the log shipper after the lines are stored in PostgreSQL, with `Nats-Msg-Id`
    `<sandboxId>:<firstSeq>-<lastSeq>`, so a reader that sees a batch can find every earlier
    line in the database.
    """

    version: Literal[1] = 1
    sandbox_id: uuid.UUID
    lines: list[LogLine]


TerminalControlType = Literal["resize", "keepalive", "close", "exit"]


class TerminalControl(Message):
    """A control message on `sbx.term.<session>.ctl`.

    API -> orchestrator: `resize` (cols, rows), `keepalive` (the client is still there), `close`
    (the client left). Orchestrator -> API: `exit` (the shell ended; `exit_code` and `reason`:
    "exited", "stopped", "idle", "gone", "closed" or "error"), and `keepalive` as the reply to a
    keepalive request.
    """

    type: TerminalControlType
    sender: Literal["api", "orchestrator"]
    cols: int | None = None
    rows: int | None = None
    exit_code: int | None = None
    reason: TerminalEndReason | None = None


FileOp = Literal["list", "stat", "mkdir", "delete", "move", "read", "write", "archive_read", "archive_write"]
FileType = Literal["file", "dir", "symlink", "other"]


class FileEntry(Message):
    """One path of a sandbox's filesystem (the contract's file entry)."""

    name: str
    path: str
    type: FileType
    size: int
    mode: str  # octal permission bits, e.g. "0644"
    modified_at: datetime | None = None


class FilesRequest(Message):
    """Request on `sbx.rpc.files`. `read`, `write`, `archive_read` and `archive_write` open a
    transfer whose bytes then travel on `sbx.files.<transferId>.{up,down}` (see
    `sbx_common.filestream`); the others are answered at once."""

    op: FileOp
    sandbox_id: uuid.UUID
    owner_id: uuid.UUID
    path: str
    to: str | None = None  # move
    recursive: bool = False  # delete
    parents: bool = False  # mkdir
    overwrite: bool = False  # move
    follow: bool = False  # stat: of what a final symlink names (a download's size)
    mode: int | None = None  # write: permission bits of the new file
    size: int | None = None  # write: the body's length when the client declared it
    offset: int = 0  # read
    length: int | None = None  # read: None = to the end
    transfer_id: str | None = None  # read, write
    # Transfers: the hex SHA-256 of the key the API will show on a direct data connection
    # (sbx_common.datachannel); absent, the bytes travel on NATS.
    data_key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    trace_id: str | None = None


class FilesReply(Message):
    """Reply to a FilesRequest (and the result frame of a write). `error_code` set: nothing done."""

    ok: bool = True
    entry: FileEntry | None = None
    entries: list[FileEntry] | None = None
    count: int | None = None  # archive_write: the entries extracted
    data_address: str | None = None  # a transfer's bytes: connect here (sbx_common.datachannel)
    error_code: RpcErrorCode | None = None
    error_message: str | None = None

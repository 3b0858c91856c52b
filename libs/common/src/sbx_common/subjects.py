"""Every NATS subject of the platform, built in one place.

Every orchestrator serves one Docker host (`SBX_HOST_ID`); what only that host can do is
addressed to it, `<hostId>` in the subject (docs/scale-out.md, "Hosts and placement"):
Commands:  sbx.cmd.<hostId>.sandbox.<verb>              (stream SBX_CMD, work queue)
Events:    sbx.evt.<ownerId>.<sandboxId>.<status>        (stream SBX_EVT)
Logs:      sbx.log.<sandboxId>                           (stream SBX_LOG)
Dead letters: sbx.dlq.<verb>                             (stream SBX_DLQ)
Request/reply (core NATS, no stream):
    sbx.rpc.orchestrator.health          -> Docker engine status of any host (one answers)
    sbx.rpc.<hostId>.orchestrator.health -> Docker engine status of that host
    sbx.rpc.<hostId>.exec                -> run a command in a sandbox
    sbx.rpc.<hostId>.terminal.open       -> open a PTY session
    sbx.rpc.<hostId>.process             -> start a background process, or write, signal, resize it
    sbx.rpc.<hostId>.files               -> a file operation, or the opening of a file transfer
Process output: sbx.proc.<sandboxId>.<processId>         (stream SBX_PROC)
Terminal session I/O (core NATS): sbx.term.<sessionId>.{in,out,ctl}
File transfer bytes (core NATS):  sbx.files.<transferId>.{up,down}  (API -> orchestrator, back)
File watches (core NATS): sbx.rpc.<hostId>.fswatch.open opens one; sbx.fswatch.<watchId>.{out,ctl}
Metrics:   $KV.sbx_metrics.<sandboxId>                   (KV bucket sbx_metrics: a put is a message)
Hosts:     $KV.sbx_hosts.<hostId>                        (KV bucket sbx_hosts: each host's heartbeat)
Notes (core NATS, no stream, nothing in them but the subject):
    sbx.note.snapshot.<snapshotId>  -> a snapshot's command was handled (for `?wait`)
"""

from __future__ import annotations

from uuid import UUID

CMD_PREFIX = "sbx.cmd"
CMD_ALL = f"{CMD_PREFIX}.*.sandbox.*"
# The host a single-host installation runs as (`SBX_HOST_ID`'s default); rows made before hosts
# existed belong to it.
DEFAULT_HOST = "local"
RPC_PREFIX = "sbx.rpc"
EVT_PREFIX = "sbx.evt"
EVT_ALL = f"{EVT_PREFIX}.>"
LOG_PREFIX = "sbx.log"
LOG_ALL = f"{LOG_PREFIX}.*"
DLQ_PREFIX = "sbx.dlq"
DLQ_ALL = f"{DLQ_PREFIX}.>"

RPC_ORCHESTRATOR_HEALTH = "sbx.rpc.orchestrator.health"
TERM_PREFIX = "sbx.term"
FSWATCH_PREFIX = "sbx.fswatch"
NOTE_SNAPSHOT_PREFIX = "sbx.note.snapshot"
NOTE_SNAPSHOT_ALL = f"{NOTE_SNAPSHOT_PREFIX}.*"
PROC_PREFIX = "sbx.proc"
PROC_ALL = f"{PROC_PREFIX}.*.*"
FILES_PREFIX = "sbx.files"
# The host-addressed RPCs (`rpc(host, name)`), and every host's (for permissions).
RPC_HEALTH = "orchestrator.health"
RPC_EXEC = "exec"
RPC_PROCESS = "process"
RPC_TERMINAL_OPEN = "terminal.open"
RPC_FILES = "files"
RPC_FSWATCH_OPEN = "fswatch.open"
HOST_RPCS = (RPC_HEALTH, RPC_EXEC, RPC_PROCESS, RPC_TERMINAL_OPEN, RPC_FILES, RPC_FSWATCH_OPEN)
# The KV bucket of the latest metrics samples (declared in topology.py); JetStream keeps a
# bucket's entries on the subjects `$KV.<bucket>.<key>`.
METRICS_BUCKET = "sbx_metrics"
METRICS_KV_PREFIX = f"$KV.{METRICS_BUCKET}"
# The KV bucket of the hosts' heartbeats (key = host id; declared in topology.py).
HOSTS_BUCKET = "sbx_hosts"
HOSTS_KV_PREFIX = f"$KV.{HOSTS_BUCKET}"


def command(host_id: str, verb: str) -> str:
    """A command to the orchestrator of `host_id` (the host the sandbox is placed on)."""
    return f"{CMD_PREFIX}.{host_id}.sandbox.{verb}"


def commands_of_host(host_id: str) -> str:
    """Every command to one host: the filter of that host's durable consumer."""
    return f"{CMD_PREFIX}.{host_id}.sandbox.*"


def rpc(host_id: str, name: str) -> str:
    """A request only the orchestrator of `host_id` answers (`name` one of `HOST_RPCS`)."""
    return f"{RPC_PREFIX}.{host_id}.{name}"


def rpc_all_hosts(name: str) -> str:
    """The same request to any host (a permission, never a publish)."""
    return f"{RPC_PREFIX}.*.{name}"


def hosts_kv(host_id: str) -> str:
    """The subject of one host's heartbeat entry: a put publishes on it."""
    return f"{HOSTS_KV_PREFIX}.{host_id}"


def event(owner_id: UUID | str, sandbox_id: UUID | str, status: str) -> str:
    return f"{EVT_PREFIX}.{owner_id}.{sandbox_id}.{status}"


def events_of_owner(owner_id: UUID | str) -> str:
    return f"{EVT_PREFIX}.{owner_id}.>"


def events_of_sandbox(owner_id: UUID | str, sandbox_id: UUID | str) -> str:
    return f"{EVT_PREFIX}.{owner_id}.{sandbox_id}.*"


def log(sandbox_id: UUID | str) -> str:
    return f"{LOG_PREFIX}.{sandbox_id}"


def dead_letter(verb: str) -> str:
    return f"{DLQ_PREFIX}.{verb}"


def terminal_input(session_id: str) -> str:
    return f"{TERM_PREFIX}.{session_id}.in"


def terminal_output(session_id: str) -> str:
    return f"{TERM_PREFIX}.{session_id}.out"


def terminal_control(session_id: str) -> str:
    return f"{TERM_PREFIX}.{session_id}.ctl"


def snapshot_note(snapshot_id: UUID | str) -> str:
    """Published by the orchestrator once it handled a snapshot's command (its row may have
    changed); the API's `?wait` re-reads the snapshot when it hears it."""
    return f"{NOTE_SNAPSHOT_PREFIX}.{snapshot_id}"


def metrics_kv(key: str) -> str:
    """The subject of one entry of the metrics bucket (key = sandbox id): a put publishes on it."""
    return f"{METRICS_KV_PREFIX}.{key}"


def process_output(sandbox_id: UUID | str, process_id: UUID | str) -> str:
    """The live output (and end) of one background process (stream SBX_PROC)."""
    return f"{PROC_PREFIX}.{sandbox_id}.{process_id}"


def files_up(transfer_id: str) -> str:
    """A file transfer's frames from the API to the orchestrator (upload bytes, credits, cancel)."""
    return f"{FILES_PREFIX}.{transfer_id}.up"


def files_down(transfer_id: str) -> str:
    """A file transfer's frames from the orchestrator to the API (download bytes, credits, result)."""
    return f"{FILES_PREFIX}.{transfer_id}.down"


def fswatch_output(watch_id: str) -> str:
    """A file watch's changes (orchestrator -> API), its end last."""
    return f"{FSWATCH_PREFIX}.{watch_id}.out"


def fswatch_control(watch_id: str) -> str:
    """A file watch's keepalives and close (API -> orchestrator)."""
    return f"{FSWATCH_PREFIX}.{watch_id}.ctl"

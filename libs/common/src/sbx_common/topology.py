"""The one place where JetStream streams and KV buckets are declared.

`apply_topology()` runs once at start-up (`sbx-migrate`, `make run`, test fixtures). Services
bind to these streams without declaring them, so no service can rewrite a stream's settings.

Every stream and bucket gets `replicas` copies (`SBX_STREAM_REPLICAS`): 1 on a single server,
3 on a cluster of three or more, so that losing one server loses nothing. Applying the topology
again with another number changes the existing streams' replicas in place (JetStream copies the
data to the new peers); a number above the cluster's size is refused by the server.
"""

from __future__ import annotations

import dataclasses
import logging

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError

from sbx_common import subjects

logger = logging.getLogger(__name__)

STREAM_CMD = "SBX_CMD"
STREAM_EVT = "SBX_EVT"
STREAM_LOG = "SBX_LOG"
STREAM_DLQ = "SBX_DLQ"
STREAM_PROC = "SBX_PROC"
KV_METRICS = subjects.METRICS_BUCKET
KV_HOSTS = subjects.HOSTS_BUCKET

DAY = 24 * 3600.0

STREAMS: list[StreamConfig] = [
    StreamConfig(
        name=STREAM_CMD,
        subjects=[subjects.CMD_ALL],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120.0,  # Nats-Msg-Id dedupe window
        max_age=7 * DAY,
    ),
    StreamConfig(
        name=STREAM_EVT,
        subjects=[subjects.EVT_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=120.0,
        max_age=7 * DAY,
        max_bytes=1024**3,
        discard=DiscardPolicy.OLD,
    ),
    StreamConfig(
        name=STREAM_LOG,
        subjects=[subjects.LOG_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=120.0,
        max_age=DAY,
        max_msgs_per_subject=20_000,
        max_bytes=2 * 1024**3,
        discard=DiscardPolicy.OLD,
    ),
    # Background processes' output, live: `Nats-Msg-Id` = `<processId>:<seq>` drops the chunks the
    # orchestrator publishes again after a reconnect. What is kept for reading is in PostgreSQL
    # (`sandbox_process_output`, trimmed per process by bytes, which a stream cannot do per
    # subject); the stream only needs to hold the recent past.
    StreamConfig(
        name=STREAM_PROC,
        subjects=[subjects.PROC_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=600.0,
        max_age=DAY,
        max_bytes=1024**3,
        discard=DiscardPolicy.OLD,
    ),
    StreamConfig(
        name=STREAM_DLQ,
        subjects=[subjects.DLQ_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=30 * DAY,
    ),
]


KV_BUCKETS: list[KeyValueConfig] = [
    KeyValueConfig(bucket=KV_METRICS, history=1, ttl=300.0, storage=StorageType.MEMORY),
    # Each host's latest heartbeat; an entry older than `SBX_HOST_GRACE` is a lost host. Kept
    # (no TTL) so a lost host stays listed, and on file so a NATS restart forgets no host.
    KeyValueConfig(bucket=KV_HOSTS, history=1, storage=StorageType.FILE),
]

# JetStream keeps at most five copies of a stream.
MAX_REPLICAS = 5


async def apply_topology(js: JetStreamContext, replicas: int = 1) -> None:
    """Create or update every stream and bucket to the settings above, each with `replicas`
    copies (idempotent)."""
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"stream replicas must be 1 to {MAX_REPLICAS}, not {replicas}")
    for declared in STREAMS:
        config = dataclasses.replace(declared, num_replicas=replicas)
        assert config.name is not None
        try:
            info = await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
            logger.info("stream created", extra={"stream": config.name, "replicas": replicas})
        else:
            await js.update_stream(config)
            _log_replicas_change(config.name, info.config.num_replicas, replicas)
    for bucket in KV_BUCKETS:
        await _apply_bucket(js, dataclasses.replace(bucket, replicas=replicas))


async def _apply_bucket(js: JetStreamContext, config: KeyValueConfig) -> None:
    try:
        await js.key_value(config.bucket)
    except BucketNotFoundError:
        await js.create_key_value(config)
        logger.info("kv bucket created", extra={"bucket": config.bucket, "replicas": config.replicas})
        return
    # A bucket is a stream (`KV_<bucket>`); only its replicas are ever changed here, the rest
    # of its settings stay as the bucket was made.
    stream = f"KV_{config.bucket}"
    info = await js.stream_info(stream)
    if info.config.num_replicas != config.replicas:
        await js.update_stream(dataclasses.replace(info.config, num_replicas=config.replicas))
        _log_replicas_change(stream, info.config.num_replicas, config.replicas)


def _log_replicas_change(stream: str, before: int | None, after: int) -> None:
    if (before or 1) != after:
        logger.info("stream replicas changed", extra={"stream": stream, "from": before or 1, "to": after})

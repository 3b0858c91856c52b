"""The one place where JetStream streams and KV buckets are declared.

`apply_topology()` runs once at start-up (`sbx-migrate`, `make run`, test fixtures). Services
bind to these streams without declaring them, so no service can rewrite a stream's settings.
"""

from __future__ import annotations

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


async def apply_topology(js: JetStreamContext) -> None:
    """Create or update every stream and bucket to the settings above (idempotent)."""
    for config in STREAMS:
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
            logger.info("stream created", extra={"stream": config.name})
        else:
            await js.update_stream(config)
    try:
        await js.key_value(KV_METRICS)
    except BucketNotFoundError:
        await js.create_key_value(
            KeyValueConfig(bucket=KV_METRICS, history=1, ttl=300.0, storage=StorageType.MEMORY)
        )
        logger.info("kv bucket created", extra={"bucket": KV_METRICS})
    try:
        await js.key_value(KV_HOSTS)
    except BucketNotFoundError:
        # Each host's latest heartbeat; an entry older than `SBX_HOST_GRACE` is a lost host. Kept
        # (no TTL) so a lost host stays listed, and on file so a NATS restart forgets no host.
        await js.create_key_value(KeyValueConfig(bucket=KV_HOSTS, history=1, storage=StorageType.FILE))
        logger.info("kv bucket created", extra={"bucket": KV_HOSTS})

"""A NATS cluster on loopback: `size` embedded nats-servers joined by routes, JetStream on each.

Used by `sbx-dev --nats-cluster N` and by the tests of `tests/natscluster`. Every server has
its own client port, route port, monitoring port and JetStream store, and the same
`authorization` block as the single embedded server, so services log in the same way; they are
given every server's URL (`SBX_NATS_URL`, comma separated). A server stopped or killed can be
started again on the same ports and store, and rejoins the cluster.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from sbx_devstack.servers import EmbeddedNats, free_port

CLUSTER_NAME = "sbx"


def _cluster_block(name: str, index: int, monitor_port: int, route_ports: list[int]) -> str:
    """What one server adds to the shared configuration: its name (JetStream's peers are
    named), its monitoring port, and its route listener and the other servers' routes."""
    routes = ", ".join(f'"nats-route://127.0.0.1:{port}"' for i, port in enumerate(route_ports) if i != index)
    return (
        f'server_name: "{name}-{index + 1}"\n'
        f'http: "127.0.0.1:{monitor_port}"\n'
        "cluster {\n"
        f'  name: "{name}"\n'
        f'  listen: "127.0.0.1:{route_ports[index]}"\n'
        f"  routes: [{routes}]\n"
        "}\n"
    )


class EmbeddedNatsCluster:
    """`size` nats-servers in one cluster, their stores under `root/n1`, `root/n2`, ...

    `ports` are the client ports (free ones when not given); `config` is the configuration
    every server shares (typically the `authorization` block of `sbx_devstack.nats_auth`).
    """

    def __init__(
        self,
        root: Path,
        size: int = 3,
        config: str | None = None,
        ports: list[int] | None = None,
        name: str = CLUSTER_NAME,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one server")
        client_ports = ports or [free_port() for _ in range(size)]
        if len(client_ports) != size:
            raise ValueError(f"{size} servers need {size} client ports")
        route_ports = [free_port() for _ in range(size)]
        self.monitor_ports = [free_port() for _ in range(size)]
        self.servers = [
            EmbeddedNats(
                root / f"n{i + 1}",
                port=client_ports[i],
                config=(config or "") + _cluster_block(name, i, self.monitor_ports[i], route_ports),
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every server's URL, comma separated: what `SBX_NATS_URL` takes."""
        return ",".join(server.url for server in self.servers)

    def start(self, timeout: float = 60.0) -> EmbeddedNatsCluster:
        """Start every server; return once the cluster has a JetStream leader and every server
        is current with it."""
        for server in self.servers:
            server.start()
        self.wait_healthy(timeout)
        return self

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def start_server(self, index: int, timeout: float = 60.0) -> None:
        """Start server `index` again (same ports and store); return once it has caught up."""
        self.servers[index].start()
        self.wait_healthy(timeout, [index])

    def healthy(self, index: int) -> bool:
        """Whether server `index` reports itself healthy: up, in a cluster with a JetStream
        meta leader, and current on every stream it holds (`/healthz`)."""
        url = f"http://127.0.0.1:{self.monitor_ports[index]}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return bool(json.loads(reply.read()).get("status") == "ok")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def monitor(self, index: int, path: str) -> dict[str, object]:
        """A report of server `index`'s monitoring port (`/jsz`, `/connz`, ...), or {} when it
        does not answer."""
        url = f"http://127.0.0.1:{self.monitor_ports[index]}/{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                answer = json.loads(reply.read())
        except (OSError, ValueError, urllib.error.URLError):
            return {}
        return answer if isinstance(answer, dict) else {}

    def client_names(self, index: int) -> list[str]:
        """The names of the clients connected to server `index` (e.g. `sbx-api`)."""
        connections = self.monitor(index, "connz?limit=1024").get("connections")
        if not isinstance(connections, list):
            return []
        return [str(c.get("name", "")) for c in connections if isinstance(c, dict)]

    def wait_healthy(self, timeout: float = 60.0, indexes: list[int] | None = None) -> None:
        chosen = range(len(self.servers)) if indexes is None else indexes
        deadline = time.monotonic() + timeout
        while not all(self.healthy(i) for i in chosen):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the NATS cluster was not healthy within {timeout}s")
            time.sleep(0.2)

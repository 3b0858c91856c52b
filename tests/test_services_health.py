"""Every service runs as its own process and answers its health and metrics routes."""

from __future__ import annotations

import httpx

from tests.support.platform import Platform


async def test_every_worker_service_answers_health_and_metrics(platform: Platform) -> None:
    assert set(platform.ops_ports) == {
        "orchestrator",
        "log-shipper",
        "reaper",
        "metrics-collector",
        "webhooks",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for name, port in platform.ops_ports.items():
            live = await http.get(f"http://127.0.0.1:{port}/health/live")
            assert live.status_code == 200, name
            assert live.json() == {"alive": True}
            ready = await http.get(f"http://127.0.0.1:{port}/health/ready")
            assert ready.status_code == 200, (name, ready.text)
            assert ready.json()["checks"]["nats"] is True
            metrics = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert metrics.status_code == 200
            assert "process_cpu_seconds_total" in metrics.text or "python_info" in metrics.text


async def test_services_log_json_lines(platform: Platform) -> None:
    import json

    for name in platform.ops_ports:
        lines = [line for line in platform.logs(name).splitlines() if line.strip()]
        assert lines, name
        for line in lines:
            entry = json.loads(line)
            assert entry["service"] == name

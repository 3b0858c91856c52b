/**
 * CPU, memory, network and block I/O of a running sandbox: `GET /sandboxes/:id/metrics` every
 * 2 s (the collector samples about as often), drawn as rolling charts of the last 2 minutes.
 */

import { isSandboxApiError } from "@sandbox-platform/sdk";
import { useEffect, useState } from "react";

import { formatBytes, formatRate } from "../format";
import { EMPTY_HISTORY, POLL_SECONDS, addSample } from "../metrics";
import type { MetricsHistory } from "../metrics";
import { useSession } from "../session";
import { Chart } from "./Chart";
import { ErrorMessage, Spinner } from "./Feedback";

const POLL_MS = POLL_SECONDS * 1000;

export function MetricsPanel({ sandboxId, running }: { sandboxId: string; running: boolean }) {
  const { client, check } = useSession();
  const [history, setHistory] = useState<MetricsHistory>(EMPTY_HISTORY);
  const [error, setError] = useState<unknown>(undefined);

  useEffect(() => {
    if (!running) return;
    const controller = new AbortController();
    const stopped = () => controller.signal.aborted;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const sample = await client.getMetrics(sandboxId);
        if (stopped()) return;
        setHistory((h) => addSample(h, sample));
        setError(undefined);
      } catch (failure) {
        if (stopped()) return;
        check(failure);
        // NOT_RUNNING between a stop and its event, or before the first sample: not worth a message.
        if (!(isSandboxApiError(failure) && failure.code === "NOT_RUNNING")) setError(failure);
      }
      if (!stopped()) timer = setTimeout(tick, POLL_MS);
    };
    void tick();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [client, check, sandboxId, running]);

  const { points } = history;
  const last = points[points.length - 1];
  return (
    <div className="metrics">
      {!running && points.length === 0 && <p className="muted">Charts appear while the sandbox is running.</p>}
      {running && points.length === 0 && !error && (
        <p className="loading">
          <Spinner label="Waiting for the first sample" /> Waiting for the first sample…
        </p>
      )}
      <ErrorMessage error={error} />
      <div className="charts">
        <Chart title="CPU" points={points} series={[{ key: "cpuPercent", label: "used", color: "#2563eb" }]} format={(v) => `${v.toFixed(1)} %`} minMax={5} />
        <Chart
          title="Memory"
          points={points}
          series={[{ key: "memoryBytes", label: "used", color: "#7c3aed" }]}
          format={formatBytes}
          minMax={last ? Math.min(last.memoryLimitBytes, 16 * 1024 * 1024) : 1024 * 1024}
        />
        <Chart
          title="Network"
          points={points}
          series={[
            { key: "rxRate", label: "in", color: "#059669" },
            { key: "txRate", label: "out", color: "#d97706" },
          ]}
          format={formatRate}
          minMax={1024}
        />
        <Chart
          title="Disk I/O"
          points={points}
          series={[
            { key: "readRate", label: "read", color: "#0891b2" },
            { key: "writeRate", label: "write", color: "#db2777" },
          ]}
          format={formatRate}
          minMax={1024}
        />
      </div>
      {last && <p className="muted">Processes: {last.pids}</p>}
    </div>
  );
}

/**
 * One sandbox: its status (kept current by its own event stream, which also fills the
 * timeline), the lifecycle buttons, a terminal, live logs, metrics charts, its processes, files and
 * preview links, an exec box and its snapshots.
 */

import { useEffect, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import type { Sandbox, SandboxEvent } from "@sandbox-platform/sdk";

import { ErrorMessage, Loading, Spinner, StatusBadge } from "../components/Feedback";
import { ExecBox } from "../components/ExecBox";
import { LifecycleButtons } from "../components/LifecycleButtons";
import { LogsPane } from "../components/LogsPane";
import { MetricsPanel } from "../components/MetricsPanel";
import { SandboxNetwork } from "../components/SandboxNetwork";
import { SandboxSnapshots } from "../components/SandboxSnapshots";
import { SandboxWorkspace } from "../components/SandboxWorkspace";
import { TerminalPane } from "../components/TerminalPane";
import { formatTime } from "../format";
import { useLoad } from "../hooks";
import { LatestEvents } from "../sandboxes";
import { useSession } from "../session";

/** The sandbox's events (`GET /sandboxes/:id/events`: its history, then live ones). */
function useSandboxEvents(sandboxId: string, onEvent: (event: SandboxEvent) => void) {
  const { client, check } = useSession();
  const [events, setEvents] = useState<SandboxEvent[]>([]);
  const [state, setState] = useState<"loading" | "live" | "failed">("loading");
  const [error, setError] = useState<unknown>(undefined);
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  });

  useEffect(() => {
    const controller = new AbortController();
    const stream = client.sandboxEvents(sandboxId, { signal: controller.signal });
    setEvents([]);
    setState("loading");
    void (async () => {
      try {
        for await (const event of stream) {
          setEvents((current) => current.concat(event));
          setState("live");
          handler.current(event);
        }
      } catch (failure) {
        if (controller.signal.aborted) return;
        check(failure);
        setError(failure);
        setState("failed");
      }
    })();
    return () => {
      controller.abort();
    };
  }, [client, check, sandboxId]);
  return { events, state, error };
}

function Timeline({ events, state, error }: ReturnType<typeof useSandboxEvents>) {
  return (
    <div>
      <ErrorMessage error={error} />
      {state === "loading" && events.length === 0 && (
        <p className="loading">
          <Spinner label="Loading the events" /> Loading the events…
        </p>
      )}
      <ol className="timeline" aria-label="Status timeline">
        {events.map((event) => {
          const reason = typeof event.data.reason === "string" ? event.data.reason : undefined;
          return (
            <li key={event.id} data-status={event.status}>
              <StatusBadge status={event.status} past />
              <time dateTime={event.occurredAt}>{new Date(event.occurredAt).toLocaleTimeString()}</time>
              {reason && <span className="muted"> {reason}</span>}
            </li>
          );
        })}
      </ol>
    </div>
  );
}

function Details({ sandbox }: { sandbox: Sandbox }) {
  return (
    <dl className="settings">
      <div>
        <dt>id</dt>
        <dd>
          <code>{sandbox.id}</code>
        </dd>
      </div>
      <div>
        <dt>environment</dt>
        <dd>
          <Link to={`/environments/${sandbox.environmentId}`}>v{sandbox.environmentVersion}</Link> <code>{sandbox.image}</code>
        </dd>
      </div>
      <div>
        <dt>resources</dt>
        <dd>
          {sandbox.cpu} CPU, {sandbox.memory} MiB memory, {sandbox.disk} MiB disk
        </dd>
      </div>
      <div>
        <dt>runtime</dt>
        <dd>
          <code>{sandbox.runtime}</code>
        </dd>
      </div>
      <div>
        <dt>host</dt>
        <dd>
          <code>{sandbox.hostId}</code>
        </dd>
      </div>
      <div>
        <dt>endpoints</dt>
        <dd>
          {sandbox.endpoints.length === 0
            ? "none"
            : sandbox.endpoints.map((e) => (
                <span key={e.containerPort} className="endpoint">
                  {e.containerPort} → <a href={e.url ?? undefined}>{e.url}</a>
                </span>
              ))}
        </dd>
      </div>
      <div>
        <dt>created</dt>
        <dd>{formatTime(sandbox.createdAt)}</dd>
      </div>
      <div>
        <dt>started</dt>
        <dd>{formatTime(sandbox.startedAt)}</dd>
      </div>
      <div>
        <dt>expires</dt>
        <dd>{formatTime(sandbox.expiresAt)}</dd>
      </div>
      {Object.keys(sandbox.env).length > 0 && (
        <div>
          <dt>variables</dt>
          <dd>
            <code>{Object.keys(sandbox.env).join(", ")}</code>
          </dd>
        </div>
      )}
    </dl>
  );
}

export function SandboxPage() {
  const { id = "" } = useParams();
  const { client } = useSession();
  const navigate = useNavigate();
  const latest = useRef(new LatestEvents());
  const loaded = useLoad(async () => latest.current.merge(await client.getSandbox(id)), [client, id]);
  const { setData } = loaded;
  const timeline = useSandboxEvents(id, (event) => {
    if (!latest.current.record(event)) return;
    setData((current) => (current ? latest.current.merge(current) : current));
  });

  if (loaded.loading && !loaded.data) return <Loading />;
  const sandbox = loaded.data;
  if (!sandbox) {
    return (
      <section>
        <h1>Sandbox</h1>
        <ErrorMessage error={loaded.error} />
        <Link to="/sandboxes">All sandboxes</Link>
      </section>
    );
  }
  const running = sandbox.status === "running";

  return (
    <section className="sandbox-page" data-sandbox-id={sandbox.id}>
      <p className="crumbs">
        <Link to="/sandboxes">Sandboxes</Link> /
      </p>
      <div className="page-head">
        <h1>
          {sandbox.name} <StatusBadge status={sandbox.status} />
        </h1>
        {sandbox.statusReason && <span className="muted">{sandbox.statusReason}</span>}
      </div>
      <LifecycleButtons
        sandbox={sandbox}
        onChange={(next) => { setData(() => latest.current.merge(next)); }}
        onReplicated={(copy) => void navigate(`/sandboxes/${copy.id}`)}
      />
      <div className="sandbox-grid">
        <section className="panel span-2" aria-labelledby="terminal-title">
          <h2 id="terminal-title">Terminal</h2>
          {running ? <TerminalPane sandboxId={sandbox.id} /> : <p className="muted">The terminal opens while the sandbox is running.</p>}
        </section>
        <section className="panel span-2" aria-labelledby="logs-title">
          <h2 id="logs-title">Logs</h2>
          <LogsPane sandboxId={sandbox.id} />
        </section>
        <section className="panel span-2" aria-labelledby="metrics-title">
          <h2 id="metrics-title">Metrics</h2>
          <MetricsPanel sandboxId={sandbox.id} running={running} />
        </section>
        <section className="panel" aria-labelledby="exec-title">
          <h2 id="exec-title">Run a command</h2>
          <ExecBox sandboxId={sandbox.id} running={running} />
        </section>
        <section className="panel" aria-labelledby="snapshots-title">
          <h2 id="snapshots-title">Snapshots</h2>
          <SandboxSnapshots sandboxId={sandbox.id} canSnapshot={["running", "paused", "stopped"].includes(sandbox.status)} />
        </section>
        <section className="panel" aria-labelledby="timeline-title">
          <h2 id="timeline-title">Timeline</h2>
          <Timeline {...timeline} />
        </section>
        <section className="panel" aria-labelledby="network-title">
          <h2 id="network-title">Network</h2>
          <SandboxNetwork sandbox={sandbox} onChange={(next) => { setData(() => latest.current.merge(next)); }} />
        </section>
        <section className="panel" aria-labelledby="details-title">
          <h2 id="details-title">Details</h2>
          <Details sandbox={sandbox} />
        </section>
        <section className="panel span-2" aria-labelledby="workspace-title">
          <h2 id="workspace-title">Workspace</h2>
          <SandboxWorkspace sandboxId={sandbox.id} running={running} />
        </section>
      </div>
    </section>
  );
}

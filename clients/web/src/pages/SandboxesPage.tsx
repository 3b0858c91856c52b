/**
 * Sandboxes: a list kept current by the events socket (no polling), filters by status and
 * environment (in the address, so a filtered view can be linked), creating one (from an
 * environment or a ready snapshot, with volume mounts), and the
 * lifecycle buttons of each.
 */

import { useCallback, useRef, useState } from "react";
import type { SyntheticEvent } from "react";
import { Link, useSearchParams } from "react-router";
import type { Environment, Sandbox, SandboxEvent, SandboxStatus, Volume } from "@sandbox-platform/sdk";

import { ErrorMessage, Loading, Spinner, StatusBadge } from "../components/Feedback";
import { LifecycleButtons } from "../components/LifecycleButtons";
import { useEventFeed } from "../events";
import type { FeedState } from "../events";
import { formatAgo, formatTime, shortId } from "../format";
import { useAction, useLoad } from "../hooks";
import { LatestEvents, STATUSES, listAfterEvent, matchesFilter } from "../sandboxes";
import type { ListFilter } from "../sandboxes";
import { useSession } from "../session";
import { mountsFromRows, readySnapshots } from "../snapshots";
import type { MountRow } from "../snapshots";

/** How long an event of a sandbox the list does not hold waits before that sandbox is fetched. */
const UNKNOWN_FETCH_DELAY_MS = 1000;

function FeedIndicator({ state, retry }: { state: FeedState; retry: () => void }) {
  if (state.status === "live") {
    return (
      <span className="feed live" data-feed="live">
        <span className="dot" aria-hidden="true" /> Live
      </span>
    );
  }
  if (state.status === "connecting") {
    return (
      <span className="feed" data-feed="connecting">
        <Spinner label="Connecting to live updates" /> Connecting…
      </span>
    );
  }
  return (
    <span className="feed failed" data-feed="failed">
      Live updates stopped.{" "}
      <button type="button" className="link" onClick={retry}>
        Reconnect
      </button>
    </span>
  );
}

function MountFields({
  volumes,
  rows,
  onChange,
}: {
  volumes: Volume[];
  rows: MountRow[];
  onChange: (rows: MountRow[]) => void;
}) {
  const set = (index: number, change: Partial<MountRow>) => {
    onChange(rows.map((row, i) => (i === index ? { ...row, ...change } : row)));
  };
  return (
    <fieldset className="mounts">
      <legend>Volume mounts (optional)</legend>
      {volumes.length === 0 && (
        <p className="muted">
          No volumes yet: <Link to="/volumes">create one</Link>.
        </p>
      )}
      {rows.map((row, index) => (
        <div className="form inline mount-row" key={index} role="group" aria-label={`Mount ${index + 1}`}>
          <label>
            Volume
            <select value={row.volumeId} onChange={(e) => { set(index, { volumeId: e.target.value }); }}>
              <option value="">None</option>
              {volumes.map((volume) => (
                <option key={volume.id} value={volume.id}>
                  {volume.name} ({volume.sizeMiB} MiB)
                </option>
              ))}
            </select>
          </label>
          <label>
            Mount path
            <input value={row.mountPath} onChange={(e) => { set(index, { mountPath: e.target.value }); }} placeholder="/data" spellCheck={false} />
          </label>
          <label className="check">
            <input type="checkbox" checked={row.readOnly} onChange={(e) => { set(index, { readOnly: e.target.checked }); }} /> Read-only
          </label>
          <button type="button" onClick={() => { onChange(rows.filter((_, i) => i !== index)); }}>
            Remove mount {index + 1}
          </button>
        </div>
      ))}
      {volumes.length > 0 && (
        <button type="button" onClick={() => { onChange([...rows, { volumeId: volumes[0]?.id ?? "", mountPath: "/data", readOnly: false }]); }}>
          Add a mount
        </button>
      )}
    </fieldset>
  );
}

function CreateSandbox({
  environments,
  initial,
  initialSnapshot,
  onCreated,
  onCancel,
}: {
  environments: Environment[];
  initial: string | undefined;
  initialSnapshot: string | undefined;
  onCreated: (sandbox: Sandbox) => void;
  onCancel: () => void;
}) {
  const { client } = useSession();
  const action = useAction();
  const snapshots = useLoad(async () => readySnapshots(await client.listSnapshots()), [client]);
  const volumes = useLoad(() => client.listVolumes(), [client]);
  const [source, setSource] = useState<"environment" | "snapshot">(initialSnapshot ? "snapshot" : "environment");
  const [environmentId, setEnvironmentId] = useState(initial ?? environments[0]?.id ?? "");
  const [snapshotId, setSnapshotId] = useState(initialSnapshot ?? "");
  const [name, setName] = useState("");
  const [ttl, setTtl] = useState("");
  const [mounts, setMounts] = useState<MountRow[]>([]);
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const chosenSnapshot = snapshotId === "" ? (snapshots.data?.[0]?.id ?? "") : snapshotId;

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    const checked = mountsFromRows(mounts);
    if ("problem" in checked) {
      setProblem(checked.problem);
      return;
    }
    setProblem(undefined);
    const ttlSeconds = ttl.trim() === "" ? undefined : Number(ttl);
    const from = source === "snapshot" ? { snapshotId: chosenSnapshot } : { environmentId };
    const sandbox = await action.run(() =>
      client.createSandbox(
        { ...from, name: name.trim() || undefined, ttlSeconds, volumes: checked.mounts.length > 0 ? checked.mounts : undefined },
        { wait: false },
      ),
    );
    if (sandbox) {
      setName("");
      onCreated(sandbox);
    }
  };

  if (environments.length === 0 && !initialSnapshot) {
    return (
      <p>
        You need an environment first: <Link to="/environments">create one</Link>.
      </p>
    );
  }
  return (
    <form onSubmit={submit} className="form inline" aria-label="New sandbox">
      <fieldset className="source">
        <legend>Create from</legend>
        <label className="check">
          <input type="radio" name="source" value="environment" checked={source === "environment"} onChange={() => { setSource("environment"); }} /> An environment
        </label>
        <label className="check">
          <input type="radio" name="source" value="snapshot" checked={source === "snapshot"} onChange={() => { setSource("snapshot"); }} /> A snapshot
        </label>
      </fieldset>
      {source === "environment" ? (
        <label>
          Environment
          <select value={environmentId} onChange={(e) => { setEnvironmentId(e.target.value); }} required>
            {environments.map((env) => (
              <option key={env.id} value={env.id}>
                {env.name} (v{env.version})
              </option>
            ))}
          </select>
        </label>
      ) : snapshots.loading && !snapshots.data ? (
        <Loading label="Loading the snapshots…" />
      ) : (
        <label>
          Snapshot
          <select value={chosenSnapshot} onChange={(e) => { setSnapshotId(e.target.value); }} required>
            {snapshots.data?.length === 0 && <option value="">No ready snapshots</option>}
            {(snapshots.data ?? []).map((snapshot) => (
              <option key={snapshot.id} value={snapshot.id}>
                {snapshot.name} ({formatAgo(snapshot.createdAt)})
              </option>
            ))}
          </select>
        </label>
      )}
      <label>
        Name (optional)
        <input value={name} maxLength={100} onChange={(e) => { setName(e.target.value); }} placeholder="generated" />
      </label>
      <label>
        Lifetime in seconds (optional)
        <input inputMode="numeric" pattern="\d*" value={ttl} onChange={(e) => { setTtl(e.target.value); }} placeholder="3600" />
      </label>
      <MountFields volumes={volumes.data ?? []} rows={mounts} onChange={setMounts} />
      <div className="actions">
        <button type="submit" className="primary" disabled={action.pending || (source === "snapshot" && chosenSnapshot === "")}>
          {action.pending && <Spinner label="Creating" />} Create sandbox
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
      <ErrorMessage error={snapshots.error} />
      <ErrorMessage error={volumes.error} />
      <ErrorMessage error={action.error} />
    </form>
  );
}

export function SandboxesPage() {
  const { client, check } = useSession();
  const [params, setParams] = useSearchParams();
  const status: SandboxStatus = params.get("status") ?? "";
  const environmentId = params.get("environmentId") ?? "";
  const createFor = params.get("create") ?? undefined;
  const createFromSnapshot = params.get("snapshot") ?? "";
  const filter: ListFilter = { status: status || undefined, environmentId: environmentId || undefined };
  const filterRef = useRef(filter);
  filterRef.current = filter;

  const latest = useRef(new LatestEvents());
  const environments = useLoad(() => client.listEnvironments(), [client]);
  const list = useLoad(
    async () => {
      const sandboxes = await client.listSandboxes({ status: status || undefined, environmentId: environmentId || undefined });
      return sandboxes.map((s) => latest.current.merge(s)).filter((s) => matchesFilter(s, filterRef.current));
    },
    [client, status, environmentId],
  );
  const setList = list.setData;
  const fetching = useRef(new Set<string>());
  // The ids the list holds now, for callbacks that run outside a render.
  const held = useRef(new Set<string>());
  held.current = new Set((list.data ?? []).map((s) => s.id));
  const loaded = useRef(false);
  loaded.current = list.data !== undefined;

  const fetchUnknown = useCallback(
    (sandboxId: string) => {
      if (held.current.has(sandboxId)) {
        fetching.current.delete(sandboxId);
        return;
      }
      client.getSandbox(sandboxId).then(
        (fetched) => {
          fetching.current.delete(fetched.id);
          const sandbox = latest.current.merge(fetched);
          if (!matchesFilter(sandbox, filterRef.current)) return;
          setList((current) => (current && !current.some((s) => s.id === sandbox.id) ? [sandbox, ...current] : current));
        },
        (error: unknown) => {
          fetching.current.delete(sandboxId);
          check(error);
        },
      );
    },
    [client, check, setList],
  );

  const onEvent = useCallback(
    (event: SandboxEvent) => {
      if (!latest.current.record(event)) return;
      setList((current) => (current === undefined ? current : (listAfterEvent(current, event, filterRef.current) ?? current)));
      // A sandbox this list does not hold (made in another tab, or now matching the filter):
      // fetch it once, a moment later, unless this page's own create answered meanwhile (its
      // events can arrive before the answer to the POST). A list still loading gets it anyway.
      if (loaded.current && !held.current.has(event.sandboxId) && !fetching.current.has(event.sandboxId)) {
        fetching.current.add(event.sandboxId);
        setTimeout(() => {
          fetchUnknown(event.sandboxId);
        }, UNKNOWN_FETCH_DELAY_MS);
      }
    },
    [setList, fetchUnknown],
  );
  const feed = useEventFeed(onEvent);

  const replace = useCallback(
    (answer: Sandbox) => {
      const sandbox = latest.current.merge(answer);
      setList((current) => {
        if (!current) return current;
        const rest = current.filter((s) => s.id !== sandbox.id);
        if (!matchesFilter(sandbox, filterRef.current)) return rest;
        return current.some((s) => s.id === sandbox.id) ? current.map((s) => (s.id === sandbox.id ? sandbox : s)) : [sandbox, ...rest];
      });
    },
    [setList],
  );

  const setFilter = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next);
  };
  const showCreate = (open: boolean) => {
    const next = new URLSearchParams(params);
    if (open) next.set("create", environments.data?.[0]?.id ?? "");
    else {
      next.delete("create");
      next.delete("snapshot");
    }
    setParams(next);
  };

  const envNames = new Map((environments.data ?? []).map((env) => [env.id, env.name]));

  return (
    <section>
      <div className="page-head">
        <h1>Sandboxes</h1>
        <FeedIndicator state={feed.state} retry={feed.retry} />
        {createFor === undefined && (
          <button type="button" className="primary" onClick={() => { showCreate(true); }}>
            New sandbox
          </button>
        )}
      </div>
      {createFor !== undefined && (
        <div className="panel">
          <h2>New sandbox</h2>
          {environments.loading && !environments.data ? (
            <Loading />
          ) : (
            <>
              <ErrorMessage error={environments.error} />
              {environments.data && (
                <CreateSandbox
                  environments={environments.data}
                  initial={createFor || undefined}
                  initialSnapshot={createFromSnapshot === "" ? undefined : createFromSnapshot}
                  onCreated={(sandbox) => {
                    replace(sandbox);
                    showCreate(false);
                  }}
                  onCancel={() => { showCreate(false); }}
                />
              )}
            </>
          )}
        </div>
      )}
      <div className="form inline filters" role="search" aria-label="Filter sandboxes">
        <label>
          Status
          <select value={status} onChange={(e) => { setFilter("status", e.target.value); }}>
            <option value="">Active (not destroyed)</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Environment
          <select value={environmentId} onChange={(e) => { setFilter("environmentId", e.target.value); }}>
            <option value="">All</option>
            {(environments.data ?? []).map((env) => (
              <option key={env.id} value={env.id}>
                {env.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      {list.loading && !list.data ? (
        <Loading />
      ) : (
        <>
          <ErrorMessage error={list.error} />
          {list.data?.length === 0 && <p>No sandboxes here.</p>}
          {list.data && list.data.length > 0 && (
            <div className="table-wrap">
              <table className="sandboxes">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Status</th>
                    <th scope="col">Environment</th>
                    <th scope="col">Created</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.map((sandbox) => (
                    <tr key={sandbox.id} data-sandbox-id={sandbox.id}>
                      <td>
                        <Link to={`/sandboxes/${sandbox.id}`}>{sandbox.name}</Link>{" "}
                        <code className="muted">{shortId(sandbox.id)}</code>
                      </td>
                      <td>
                        <StatusBadge status={sandbox.status} />
                        {sandbox.statusReason && <span className="muted"> {sandbox.statusReason}</span>}
                      </td>
                      <td>
                        {envNames.get(sandbox.environmentId) ?? shortId(sandbox.environmentId)} v{sandbox.environmentVersion}
                      </td>
                      <td title={formatTime(sandbox.createdAt)}>{formatAgo(sandbox.createdAt)}</td>
                      <td>
                        <LifecycleButtons sandbox={sandbox} onChange={replace} onReplicated={replace} compact />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}

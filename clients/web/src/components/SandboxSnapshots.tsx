/**
 * A sandbox's snapshots: take one (optional name) and follow it until it is ready or failed,
 * and the ones it already has.
 */

import { useEffect, useRef, useState } from "react";
import type { SyntheticEvent } from "react";
import { Link } from "react-router";
import type { Snapshot } from "@sandbox-platform/sdk";

import { formatAgo, formatBytes, formatTime } from "../format";
import { useAction, useLoad } from "../hooks";
import { waitForSnapshot } from "../snapshots";
import { useSession } from "../session";
import { ErrorMessage, Spinner, StatusBadge } from "./Feedback";

export function SandboxSnapshots({ sandboxId, canSnapshot }: { sandboxId: string; canSnapshot: boolean }) {
  const { client } = useSession();
  const action = useAction();
  const [name, setName] = useState("");
  const [made, setMade] = useState<Snapshot | undefined>(undefined);
  const list = useLoad(() => client.listSnapshots({ sandboxId }), [client, sandboxId]);
  const { setData } = list;
  // Leaving the page stops the polling of a snapshot still being made.
  const leaving = useRef(new AbortController());
  useEffect(() => {
    const controller = new AbortController();
    leaving.current = controller;
    return () => {
      controller.abort();
    };
  }, []);

  const put = (snapshot: Snapshot) => {
    setData((current) => {
      const rest = (current ?? []).filter((s) => s.id !== snapshot.id);
      return [snapshot, ...rest];
    });
  };

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    setMade(undefined);
    const done = await action.run(async () => {
      const started = await client.createSnapshot(sandboxId, name.trim() || undefined);
      put(started);
      return waitForSnapshot((id) => client.getSnapshot(id), started, { onProgress: put, signal: leaving.current.signal });
    });
    if (done) {
      put(done);
      setMade(done);
      if (done.status === "ready") setName("");
    }
  };

  return (
    <div className="snapshots">
      <form onSubmit={submit} className="form inline" aria-label="Take a snapshot">
        <label className="grow">
          Snapshot name (optional)
          <input value={name} maxLength={100} onChange={(e) => { setName(e.target.value); }} placeholder="generated" />
        </label>
        <button type="submit" className="primary" disabled={action.pending || !canSnapshot}>
          {action.pending && <Spinner label="Taking the snapshot" />} Snapshot
        </button>
      </form>
      {action.pending && (
        <p className="loading" role="status">
          <Spinner label="Snapshot in progress" /> Making the snapshot…
        </p>
      )}
      {!canSnapshot && <p className="muted">A destroyed sandbox cannot be snapshotted.</p>}
      <ErrorMessage error={action.error} />
      {made?.status === "ready" && (
        <p role="status" className="notice">
          Snapshot {made.name} is ready: <Link to={`/sandboxes?create=&snapshot=${made.id}`}>create a sandbox from it</Link>.
        </p>
      )}
      {made?.status === "failed" && (
        <p role="alert" className="error">
          The snapshot {made.name} failed{made.statusReason ? `: ${made.statusReason}` : "."}
        </p>
      )}
      <ErrorMessage error={list.error} />
      {list.data?.length === 0 && <p className="muted">No snapshots yet.</p>}
      {list.data && list.data.length > 0 && (
        <ul className="snapshot-list" aria-label="Snapshots">
          {list.data.map((snapshot) => (
            <li key={snapshot.id} data-snapshot-id={snapshot.id}>
              <StatusBadge status={snapshot.status} past={snapshot.status !== "creating"} /> <strong>{snapshot.name}</strong>{" "}
              <span className="muted" title={formatTime(snapshot.createdAt)}>
                {formatAgo(snapshot.createdAt)}
                {snapshot.status === "ready" && `, ${formatBytes(snapshot.sizeBytes)}`}
              </span>
              {snapshot.statusReason && <span className="muted"> {snapshot.statusReason}</span>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/**
 * A sandbox's background processes: the list (status, command, exit code), starting one, its
 * kept output (followed with `since` while it runs) and TERM/KILL.
 */

import { useEffect, useState } from "react";
import type { SyntheticEvent } from "react";
import type { ProcessInfo, ProcessOutputChunk, ProcessSignal } from "@sandbox-platform/sdk";

import { useAction, useLoad } from "../hooks";
import { useSession } from "../session";
import { describeCommand } from "../workspace";
import { ErrorMessage, Loading, Spinner } from "./Feedback";

// Output and the list are read again this often while a process runs: a person watching a
// process expects new lines within a second or so, and the output route is cheap from `since`.
const FOLLOW_MS = 1000;
// The page keeps this many newest chunks of a chatty process; the API keeps far more.
const KEEP_CHUNKS = 5000;

function appendChunks(current: ProcessOutputChunk[], more: ProcessOutputChunk[]): ProcessOutputChunk[] {
  const all = current.concat(more);
  return all.length > KEEP_CHUNKS ? all.slice(all.length - KEEP_CHUNKS) : all;
}

function ProcessOutput({ sandboxId, process, onEnded }: { sandboxId: string; process: ProcessInfo; onEnded: () => void }) {
  const { client, check } = useSession();
  const [chunks, setChunks] = useState<ProcessOutputChunk[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  const running = process.status === "running";

  useEffect(() => {
    let live = true;
    // A function, so the checks after each await read the flag as it is then.
    const stopped = () => !live;
    let since = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    setChunks([]);
    const step = async () => {
      try {
        // Drain what is kept, then look once more after the process is seen to end, so its
        // last lines are never missed.
        for (;;) {
          const page = await client.getProcessOutput(sandboxId, process.id, { since, limit: 1000 });
          if (stopped()) return;
          since = page.nextSince;
          if (page.data.length > 0) setChunks((current) => appendChunks(current, page.data));
          if (page.data.length < 1000) break;
        }
        const now = await client.getProcess(sandboxId, process.id);
        if (stopped()) return;
        if (now.status !== "running") {
          const tail = await client.getProcessOutput(sandboxId, process.id, { since });
          if (stopped()) return;
          if (tail.data.length > 0) setChunks((current) => appendChunks(current, tail.data));
          onEnded();
          return;
        }
        timer = setTimeout(() => void step(), FOLLOW_MS);
      } catch (failure) {
        if (stopped()) return;
        check(failure);
        setError(failure);
      }
    };
    void step();
    return () => {
      live = false;
      if (timer !== undefined) clearTimeout(timer);
    };
    // Following starts again only for another process; its status changing is seen by `step`.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, check, sandboxId, process.id]);

  return (
    <div className="process-output" data-process-id={process.id}>
      <div className="pane-status">
        {running && <Spinner label="Following the output" />}
        <span className="muted">{running ? "Following the output…" : `Ended (${process.status})`}</span>
        {chunks.length === KEEP_CHUNKS && <span className="muted">· only the newest {KEEP_CHUNKS} chunks shown</span>}
      </div>
      <ErrorMessage error={error} />
      <pre className="output" aria-label="Process output">
        {chunks.map((chunk) => (
          <span key={chunk.seq} className={chunk.stream === "stderr" ? "stderr" : undefined}>
            {chunk.text ?? ""}
          </span>
        ))}
      </pre>
    </div>
  );
}

export function ProcessesTab({ sandboxId, running }: { sandboxId: string; running: boolean }) {
  const { client } = useSession();
  const loaded = useLoad(() => client.listProcesses(sandboxId), [client, sandboxId]);
  const start = useAction();
  const signal = useAction();
  const [command, setCommand] = useState("");
  const [tty, setTty] = useState(false);
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const processes = loaded.data ?? [];
  const current = processes.find((p) => p.id === selected);
  const anyRunning = processes.some((p) => p.status === "running");
  const { reload } = loaded;

  // While something runs, the list is read again so its status and exit code turn up unasked.
  useEffect(() => {
    if (!anyRunning) return;
    const timer = setInterval(reload, FOLLOW_MS * 2);
    return () => {
      clearInterval(timer);
    };
  }, [anyRunning, reload]);

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    const created = await start.run(() => client.createProcess(sandboxId, { command, tty }));
    if (!created) return;
    loaded.setData((list) => [created, ...(list ?? []).filter((p) => p.id !== created.id)]);
    setSelected(created.id);
    setCommand("");
  };

  const send = async (process: ProcessInfo, name: ProcessSignal) => {
    const answer = await signal.run(() => client.signalProcess(sandboxId, process.id, name));
    if (answer) loaded.setData((list) => (list ?? []).map((p) => (p.id === answer.id ? answer : p)));
  };

  return (
    <div className="processes">
      <form onSubmit={submit} className="form inline" aria-label="Start a process">
        <label className="grow">
          Process command
          <input required value={command} onChange={(e) => { setCommand(e.target.value); }} placeholder="python -m http.server 8000" spellCheck={false} />
        </label>
        <label className="check">
          <input type="checkbox" checked={tty} onChange={(e) => { setTty(e.target.checked); }} /> tty
        </label>
        <button type="submit" className="primary" disabled={start.pending || !running}>
          {start.pending && <Spinner label="Starting" />} Start process
        </button>
        <button type="button" onClick={loaded.reload}>
          Refresh
        </button>
      </form>
      {!running && <p className="muted">Processes start while the sandbox is running.</p>}
      <ErrorMessage error={start.error} />
      <ErrorMessage error={signal.error} />
      <ErrorMessage error={loaded.error} />
      {loaded.loading && !loaded.data && <Loading />}
      {loaded.data && processes.length === 0 && <p className="muted">No processes yet.</p>}
      {processes.length > 0 && (
        <div className="table-wrap">
          <table className="processes-table" aria-label="Processes">
            <thead>
              <tr>
                <th>Status</th>
                <th>Command</th>
                <th>Exit code</th>
                <th>Started</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {processes.map((p) => (
                <tr key={p.id} data-process-id={p.id} data-status={p.status} className={p.id === selected ? "selected" : undefined}>
                  <td>
                    <span className={`status status-${p.status === "running" ? "running" : "stopped"}`}>{p.status}</span>
                  </td>
                  <td>
                    <code>{describeCommand(p.command)}</code>
                  </td>
                  <td>{p.exitCode ?? (p.signal ? `signal ${p.signal}` : "")}</td>
                  <td>{new Date(p.startedAt).toLocaleTimeString()}</td>
                  <td>
                    <div className="actions">
                    <button type="button" className="small" onClick={() => { setSelected(p.id); }}>
                      Output
                    </button>
                    {p.status === "running" && (
                      <>
                        <button type="button" className="small" disabled={signal.pending} onClick={() => void send(p, "TERM")}>
                          TERM
                        </button>
                        <button type="button" className="small danger" disabled={signal.pending} onClick={() => void send(p, "KILL")}>
                          KILL
                        </button>
                      </>
                    )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {current && (
        <ProcessOutput
          key={current.id}
          sandboxId={sandboxId}
          process={current}
          onEnded={loaded.reload}
        />
      )}
    </div>
  );
}

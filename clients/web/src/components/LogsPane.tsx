/**
 * Live logs over `/ws/sandboxes/:id/logs` (the SDK resumes after a dropped socket, from the
 * last `seq`, so no line is lost or shown twice). Follow keeps the newest line in view and
 * turns itself off when the reader scrolls up; search filters what is shown.
 */

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import type { LogLine } from "@sandbox-platform/sdk";

import { appendLines, compileQuery, filterLogs } from "../logfilter";
import { useSession } from "../session";
import { ErrorMessage, Spinner } from "./Feedback";

/** Lines drawn at most (the newest of those that match). */
const SHOWN = 1000;

type FeedState = "connecting" | "live" | "ended" | "failed";

export function LogsPane({ sandboxId }: { sandboxId: string }) {
  const { client, check } = useSession();
  const [lines, setLines] = useState<LogLine[]>([]);
  const [state, setState] = useState<FeedState>("connecting");
  const [error, setError] = useState<unknown>(undefined);
  const [round, setRound] = useState(0);
  const [query, setQuery] = useState("");
  const [stream, setStream] = useState<"all" | "stdout" | "stderr">("all");
  const [follow, setFollow] = useState(true);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    const logs = client.streamLogs(sandboxId, { tail: 500, signal: controller.signal });
    let pending: LogLine[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Lines are drawn in batches (at most every 100 ms), not one render per line.
    const flush = () => {
      timer = undefined;
      const batch = pending;
      pending = [];
      setLines((current) => appendLines(current, batch));
    };
    void logs.ready().then(() => {
      if (!controller.signal.aborted) setState("live");
    });
    void (async () => {
      try {
        for await (const line of logs) {
          pending.push(line);
          timer ??= setTimeout(flush, 100);
        }
        if (!controller.signal.aborted) setState("ended");
      } catch (failure) {
        if (controller.signal.aborted) return;
        check(failure);
        setError(failure);
        setState("failed");
      }
    })();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [client, check, sandboxId, round]);

  const compiled = useMemo(() => compileQuery(query), [query]);
  const shown = useMemo(() => {
    const matching = filterLogs(lines, { text: query, stream });
    return matching.length > SHOWN ? matching.slice(matching.length - SHOWN) : matching;
  }, [lines, query, stream]);

  useLayoutEffect(() => {
    const element = box.current;
    if (follow && element) element.scrollTop = element.scrollHeight;
  }, [shown, follow]);

  const onScroll = () => {
    const element = box.current;
    if (!element) return;
    const atBottom = element.scrollHeight - element.scrollTop - element.clientHeight < 8;
    if (atBottom !== follow) setFollow(atBottom);
  };

  return (
    <div className="logs-pane" data-state={state}>
      <div className="form inline toolbar" role="search" aria-label="Search the logs">
        <label>
          Search
          <input type="search" value={query} onChange={(e) => { setQuery(e.target.value); }} placeholder="text or /regex/" />
        </label>
        <label>
          Stream
          <select value={stream} onChange={(e) => { setStream(e.target.value as typeof stream); }}>
            <option value="all">stdout and stderr</option>
            <option value="stdout">stdout</option>
            <option value="stderr">stderr</option>
          </select>
        </label>
        <label className="check">
          <input type="checkbox" checked={follow} onChange={(e) => { setFollow(e.target.checked); }} /> Follow
        </label>
        <span className="muted" aria-live="polite">
          {state === "connecting" && <Spinner label="Connecting to the logs" />}
          {state === "live" && "live"}
          {state === "ended" && "ended"} · {shown.length} of {lines.length} lines
        </span>
      </div>
      {compiled.error && <p className="error">{compiled.error}</p>}
      {state === "failed" && (
        <div>
          <ErrorMessage error={error} />
          <button type="button" onClick={() => { setError(undefined); setState("connecting"); setRound((n) => n + 1); }}>
            Reconnect
          </button>
        </div>
      )}
      <div
        className="log-lines"
        ref={box}
        onScroll={onScroll}
        tabIndex={0}
        role="log"
        aria-label="Log lines"
        data-count={lines.length}
      >
        {shown.length === 0 && <p className="muted">{lines.length === 0 ? "No log lines yet." : "No line matches."}</p>}
        {shown.map((line) => (
          <div key={line.seq} className={`log-line ${line.stream}`}>
            <span className="log-time">{new Date(line.timestamp).toLocaleTimeString()}</span>
            <span className="log-text">{line.text}</span>
          </div>
        ))}
      </div>
    </div>
  );
}

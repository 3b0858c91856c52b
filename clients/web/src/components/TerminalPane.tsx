/**
 * A shell in the sandbox: xterm.js over `/ws/sandboxes/:id/terminal` (the SDK's `openTerminal`).
 * The terminal fits its box and sends the new size whenever the box changes (window resize,
 * narrow layouts). When the socket drops, the same screen stays and a new session is opened
 * after a short back-off; a shell that exits (close 1000) ends the session until asked again.
 */

import { FitAddon } from "@xterm/addon-fit";
import { Terminal as XTerm } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { isSandboxApiError } from "@sandbox-platform/sdk";
import type { Terminal } from "@sandbox-platform/sdk";
import { useEffect, useRef, useState } from "react";

import { readableError } from "../errors";
import { useSession } from "../session";
import { Spinner } from "./Feedback";

type State =
  | { status: "connecting" }
  | { status: "open" }
  | { status: "reconnecting"; attempt: number }
  | { status: "ended" }
  | { status: "failed"; message: string };

const MAX_ATTEMPTS = 8;
/** Close codes and error codes after which another try cannot help. */
const FINAL_CODES = new Set(["UNAUTHORIZED", "NOT_FOUND", "NOT_RUNNING", "QUOTA_EXCEEDED", "VALIDATION_ERROR"]);

export function TerminalPane({ sandboxId }: { sandboxId: string }) {
  const { client, check } = useSession();
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>({ status: "connecting" });
  const [round, setRound] = useState(0);

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const term = new XTerm({
      cursorBlink: true,
      fontFamily: '"Liberation Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: "#0f172a", foreground: "#e2e8f0" },
    });
    // Tab belongs to the shell (completion); Esc then Tab leaves the terminal, so that the
    // keyboard never stays trapped in it.
    let escaped = false;
    term.attachCustomKeyEventHandler((event) => {
      if (event.type !== "keydown") return true;
      if (event.key === "Tab" && escaped) {
        escaped = false;
        return false;
      }
      escaped = event.key === "Escape";
      return true;
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    fit.fit();

    let session: Terminal | undefined;
    let disposed = false;
    let attempt = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let frame = 0;

    const send = (work: (s: Terminal) => void) => {
      if (session && !session.ended) {
        try {
          work(session);
        } catch {
          // The socket is closing: the reconnect that follows sends the current size.
        }
      }
    };
    const input = term.onData((data) => { send((s) => { s.write(data); }); });
    const resized = term.onResize(({ cols, rows }) => { send((s) => { s.resize(cols, rows); }); });
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        if (!disposed && element.clientWidth > 0) fit.fit();
      });
    });
    observer.observe(element);

    const retryLater = () => {
      attempt += 1;
      if (attempt > MAX_ATTEMPTS) {
        setState({ status: "failed", message: "The terminal could not reconnect." });
        return;
      }
      setState({ status: "reconnecting", attempt });
      timer = setTimeout(connect, Math.min(5000, 250 * 2 ** (attempt - 1)));
    };

    const connect = () => {
      if (disposed) return;
      client.openTerminal(sandboxId, { cols: term.cols, rows: term.rows }).then(
        (opened) => {
          if (disposed) {
            void opened.close();
            return;
          }
          session = opened;
          attempt = 0;
          setState({ status: "open" });
          opened.onData((bytes) => { term.write(bytes); });
          opened.onExit((exit) => {
            if (disposed || session !== opened) return;
            session = undefined;
            if (exit.code === 1000) {
              term.write("\r\n\x1b[2m[the shell exited]\x1b[0m\r\n");
              setState({ status: "ended" });
            } else {
              term.write("\r\n\x1b[2m[connection lost: reconnecting]\x1b[0m\r\n");
              retryLater();
            }
          });
          term.focus();
        },
        (error: unknown) => {
          if (disposed) return;
          check(error);
          if (isSandboxApiError(error) && FINAL_CODES.has(error.code)) {
            setState({ status: "failed", message: readableError(error).message });
          } else {
            retryLater();
          }
        },
      );
    };
    connect();

    return () => {
      disposed = true;
      clearTimeout(timer);
      cancelAnimationFrame(frame);
      observer.disconnect();
      input.dispose();
      resized.dispose();
      if (session) void session.close();
      term.dispose();
    };
  }, [client, check, sandboxId, round]);

  return (
    <div className="terminal-pane" data-state={state.status}>
      <div className="pane-status" aria-live="polite">
        {state.status === "connecting" && (
          <>
            <Spinner label="Opening the terminal" /> Opening a shell…
          </>
        )}
        {state.status === "open" && <span className="muted">Connected · Esc then Tab leaves the terminal</span>}
        {state.status === "reconnecting" && (
          <>
            <Spinner label="Reconnecting" /> Connection lost, reconnecting (attempt {state.attempt})…
          </>
        )}
        {(state.status === "ended" || state.status === "failed") && (
          <>
            <span role={state.status === "failed" ? "alert" : undefined}>
              {state.status === "ended" ? "The shell exited." : state.message}
            </span>{" "}
            <button type="button" className="small" onClick={() => { setState({ status: "connecting" }); setRound((n) => n + 1); }}>
              New session
            </button>
          </>
        )}
      </div>
      <div className="terminal-host" ref={host} aria-label="Terminal" />
    </div>
  );
}

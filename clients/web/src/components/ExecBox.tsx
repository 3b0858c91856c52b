/** Run one command in the sandbox (`POST /sandboxes/:id/exec`) and show what it printed. */

import { useState } from "react";
import type { SyntheticEvent } from "react";
import type { ExecResult } from "@sandbox-platform/sdk";

import { useAction } from "../hooks";
import { useSession } from "../session";
import { ErrorMessage, Spinner } from "./Feedback";

export function ExecBox({ sandboxId, running }: { sandboxId: string; running: boolean }) {
  const { client } = useSession();
  const action = useAction();
  const [command, setCommand] = useState("");
  const [timeout, setTimeoutSeconds] = useState("30");
  const [result, setResult] = useState<ExecResult | undefined>(undefined);

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    const answer = await action.run(() => client.exec(sandboxId, command, { timeoutSeconds: Number(timeout) || 30 }));
    if (answer) setResult(answer);
  };

  return (
    <div className="exec">
      <form onSubmit={submit} className="form inline" aria-label="Run a command">
        <label className="grow">
          Command
          <input required value={command} onChange={(e) => { setCommand(e.target.value); }} placeholder="ls -la /" spellCheck={false} />
        </label>
        <label>
          Timeout (s)
          <input inputMode="numeric" value={timeout} onChange={(e) => { setTimeoutSeconds(e.target.value); }} size={4} />
        </label>
        <button type="submit" className="primary" disabled={action.pending || !running}>
          {action.pending && <Spinner label="Running" />} Run
        </button>
      </form>
      {!running && <p className="muted">Commands run while the sandbox is running.</p>}
      <ErrorMessage error={action.error} />
      {result && (
        <div className="exec-result" data-exit-code={result.exitCode}>
          <p>
            Exit code <strong>{result.exitCode}</strong> in {result.durationMs} ms{result.timedOut && " (timed out)"}
          </p>
          {result.stdout && (
            <>
              <h4>stdout</h4>
              <pre className="output">{result.stdout}</pre>
            </>
          )}
          {result.stderr && (
            <>
              <h4>stderr</h4>
              <pre className="output stderr">{result.stderr}</pre>
            </>
          )}
        </div>
      )}
    </div>
  );
}

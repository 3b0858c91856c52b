/**
 * Start, stop, restart, pause, resume, replicate and destroy. Each call waits (`?wait=true`) until the sandbox
 * has settled, so the button shows its progress; meanwhile the events feed moves the status.
 */

import { useState } from "react";
import type { Sandbox } from "@sandbox-platform/sdk";

import { useAction } from "../hooks";
import { allowedActions } from "../sandboxes";
import { useSession } from "../session";
import { ErrorMessage, Spinner } from "./Feedback";

type Verb = "start" | "stop" | "restart" | "pause" | "resume" | "replicate" | "destroy";

const LABELS: Record<Verb, [string, string]> = {
  start: ["Start", "Starting…"],
  stop: ["Stop", "Stopping…"],
  restart: ["Restart", "Restarting…"],
  pause: ["Pause", "Pausing…"],
  resume: ["Resume", "Resuming…"],
  replicate: ["Replicate", "Replicating…"],
  destroy: ["Destroy", "Destroying…"],
};

/** `allowedActions`, with pause (from running) and resume, stop and replicate (from paused). */
function actionsOf(status: Sandbox["status"]): Set<Verb> {
  const allowed = new Set<Verb>(allowedActions(status));
  if (status === "running") allowed.add("pause");
  if (status === "paused") for (const verb of ["resume", "stop", "replicate"] as const) allowed.add(verb);
  return allowed;
}

interface Props {
  sandbox: Sandbox;
  /** The sandbox as the action left it. */
  onChange: (sandbox: Sandbox) => void;
  /** The copy a replicate made. */
  onReplicated?: (copy: Sandbox) => void;
  compact?: boolean;
}

export function LifecycleButtons({ sandbox, onChange, onReplicated, compact = false }: Props) {
  const { client } = useSession();
  const action = useAction();
  const [running, setRunning] = useState<Verb | undefined>(undefined);
  const allowed = actionsOf(sandbox.status);

  const act = async (verb: Verb) => {
    if (verb === "destroy" && !window.confirm(`Destroy the sandbox "${sandbox.name}"? Its container and files are removed.`)) return;
    setRunning(verb);
    const options = { wait: true, timeout: 120 };
    const result = await action.run(() => {
      switch (verb) {
        case "start":
          return client.startSandbox(sandbox.id, options);
        case "stop":
          return client.stopSandbox(sandbox.id, options);
        case "restart":
          return client.restartSandbox(sandbox.id, options);
        case "pause":
          return client.pauseSandbox(sandbox.id, options);
        case "resume":
          return client.resumeSandbox(sandbox.id, options);
        case "replicate":
          return client.replicateSandbox(sandbox.id, {}, { wait: false });
        case "destroy":
          return client.destroySandbox(sandbox.id, options);
      }
    });
    setRunning(undefined);
    if (!result) return;
    if (verb === "replicate") onReplicated?.(result);
    else onChange(result);
  };

  return (
    <div className={compact ? "lifecycle compact" : "lifecycle"}>
      <div className="actions" role="group" aria-label={`Actions on ${sandbox.name}`}>
        {(Object.keys(LABELS) as Verb[]).map((verb) => {
          const [label, progress] = LABELS[verb];
          const busy = running === verb;
          return (
            <button
              key={verb}
              type="button"
              className={verb === "destroy" ? "danger small" : "small"}
              disabled={running !== undefined || !allowed.has(verb)}
              onClick={() => act(verb)}
              aria-label={compact ? `${label} ${sandbox.name}` : undefined}
            >
              {busy && <Spinner label={progress} />} {busy ? progress : label}
            </button>
          );
        })}
      </div>
      <ErrorMessage error={action.error} onDismiss={action.clear} />
    </div>
  );
}

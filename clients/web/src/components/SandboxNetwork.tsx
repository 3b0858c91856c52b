/**
 * A sandbox's network policy, and changing it (`PATCH /sandboxes/:id/network`): the sandbox keeps
 * the new policy until the next change; a running one follows within a second.
 */

import { useState } from "react";
import type { SyntheticEvent } from "react";
import type { Sandbox } from "@sandbox-platform/sdk";

import { problemsUnder } from "../errors";
import { useAction } from "../hooks";
import { describeNetwork, formatAllow, policyOf, samePolicy } from "../network";
import type { Egress } from "../network";
import { isTerminal } from "../sandboxes";
import { useSession } from "../session";
import { ErrorMessage, Spinner } from "./Feedback";
import { NetworkFields } from "./NetworkFields";

interface Props {
  sandbox: Sandbox;
  /** The sandbox as the change left it. */
  onChange: (sandbox: Sandbox) => void;
}

export function SandboxNetwork({ sandbox, onChange }: Props) {
  const { client } = useSession();
  const action = useAction();
  const [editing, setEditing] = useState(false);
  const [egress, setEgress] = useState<Egress>(sandbox.network.egress);
  const [allow, setAllow] = useState(formatAllow(sandbox.network.allow));
  const [sent, setSent] = useState<string[]>([]);
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const [saved, setSaved] = useState(false);

  const open = () => {
    setEgress(sandbox.network.egress);
    setAllow(formatAllow(sandbox.network.allow));
    setProblem(undefined);
    setSaved(false);
    action.clear();
    setEditing(true);
  };

  const submit = async (event: SyntheticEvent<HTMLFormElement>) => {
    event.preventDefault();
    let policy;
    try {
      policy = policyOf(egress, allow);
    } catch (failure) {
      setProblem((failure as Error).message);
      return;
    }
    setProblem(undefined);
    if (samePolicy(policy, sandbox.network)) {
      setEditing(false);
      return;
    }
    setSent(policy.allow ?? []);
    const next = await action.run(() => client.updateSandboxNetwork(sandbox.id, policy));
    if (next) {
      onChange(next);
      setSaved(true);
      setEditing(false);
    }
  };

  const policy = describeNetwork(sandbox.network);
  return (
    <div className="sandbox-network">
      <p>
        Egress: <code data-testid="sandbox-network">{policy}</code>
      </p>
      {saved && !editing && (
        <p className="notice" role="status">
          Network policy changed{sandbox.status === "running" ? ": the sandbox follows it within a second." : "."}
        </p>
      )}
      {editing ? (
        <form onSubmit={submit} className="form" aria-label="Change the network policy">
          <NetworkFields
            egress={egress}
            allow={allow}
            onEgress={setEgress}
            onAllow={setAllow}
            problems={problemsUnder(action.error, "")}
            sent={sent}
            disabled={action.pending}
          />
          {problem && (
            <div className="error" role="alert">
              <p>{problem}</p>
            </div>
          )}
          <ErrorMessage error={action.error} shownOnFields={["egress", "allow"]} />
          <div className="actions">
            <button type="submit" className="primary" disabled={action.pending}>
              {action.pending && <Spinner label="Applying" />} Apply policy
            </button>
            <button type="button" onClick={() => { setEditing(false); action.clear(); }} disabled={action.pending}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        !isTerminal(sandbox.status) && (
          <button type="button" onClick={open}>
            Change network
          </button>
        )
      )}
    </div>
  );
}

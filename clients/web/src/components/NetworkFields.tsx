/** The egress choice and its allow list, in the environment forms and on a sandbox's page. */

import { useId } from "react";

import { describeAllowProblem } from "../errors";
import type { FieldProblem } from "../errors";
import { EGRESS_CHOICES, MAX_ALLOW } from "../network";
import type { Egress } from "../network";

interface Props {
  egress: Egress;
  allow: string;
  onEgress: (egress: Egress) => void;
  onAllow: (allow: string) => void;
  /** The API's validation problems about the policy (paths relative to it: `allow.0`). */
  problems: readonly FieldProblem[];
  /** The allow entries last sent, to name the one a problem is about. */
  sent: readonly string[];
  disabled?: boolean;
}

export function NetworkFields({ egress, allow, onEgress, onAllow, problems, sent, disabled = false }: Props) {
  const id = useId();
  // Problems with allow entries stop mattering once another egress is chosen.
  const shown = egress === "allowlist" ? problems : problems.filter((p) => !p.path.startsWith("allow"));
  const invalid = shown.length > 0;
  return (
    <fieldset className="field wide network-fields" disabled={disabled}>
      <legend>Network</legend>
      <label>
        Egress
        <select
          value={egress}
          onChange={(e) => { onEgress(e.target.value as Egress); }}
          aria-invalid={shown.some((p) => p.path === "egress")}
          aria-describedby={invalid ? `${id}-problems` : undefined}
        >
          {EGRESS_CHOICES.map((choice) => (
            <option key={choice.value} value={choice.value}>
              {choice.label}
            </option>
          ))}
        </select>
      </label>
      {egress === "allowlist" && (
        <div className="field">
          <label htmlFor={`${id}-allow`}>Allowed hosts</label>
          <textarea
            id={`${id}-allow`}
            rows={3}
            value={allow}
            onChange={(e) => { onAllow(e.target.value); }}
            placeholder={"203.0.113.0/24\npypi.org"}
            spellCheck={false}
            aria-invalid={invalid}
            aria-describedby={`${id}-allow-hint${invalid ? ` ${id}-problems` : ""}`}
          />
          <span className="hint" id={`${id}-allow-hint`}>
            One IPv4 CIDR or address, or hostname, per line (at most {MAX_ALLOW}). Private and platform addresses stay
            unreachable whatever the list says.
          </span>
        </div>
      )}
      {invalid && (
        <ul className="field-problems" id={`${id}-problems`} role="alert" aria-label="Network problems">
          {shown.map((problem) => {
            const text = describeAllowProblem(problem, sent);
            return <li key={text}>{text}</li>;
          })}
        </ul>
      )}
    </fieldset>
  );
}

/** Spinners, error messages and status badges: how every page says what is going on. */

import type { SandboxStatus } from "@sandbox-platform/sdk";

import { otherFieldLines, readableError } from "../errors";
import { isSettled } from "../sandboxes";

export function Spinner({ label = "Loading" }: { label?: string }) {
  return (
    <span className="spinner" role="status" aria-label={label}>
      <span className="spinner-dot" aria-hidden="true" />
    </span>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p className="loading">
      <Spinner label={label} /> {label}
    </p>
  );
}

interface ErrorProps {
  error: unknown;
  onDismiss?: (() => void) | undefined;
  /** Field paths whose problems the form shows on the fields themselves. */
  shownOnFields?: readonly string[] | undefined;
}

export function ErrorMessage({ error, onDismiss, shownOnFields = [] }: ErrorProps) {
  if (error === undefined || error === null) return null;
  const { message, code } = readableError(error);
  const fields = otherFieldLines(error, shownOnFields);
  return (
    <div className="error" role="alert" data-code={code}>
      <p>{message}</p>
      {fields.length > 0 && (
        <ul>
          {fields.map((field) => (
            <li key={field}>{field}</li>
          ))}
        </ul>
      )}
      {onDismiss && (
        <button type="button" className="link" onClick={onDismiss}>
          Dismiss
        </button>
      )}
    </div>
  );
}

/** A sandbox's status; a transitional one turns a small spinner, unless it is history (`past`). */
export function StatusBadge({ status, past = false }: { status: SandboxStatus; past?: boolean }) {
  return (
    <span className={`status status-${status}`} data-status={status}>
      {!past && !isSettled(status) && <span className="spinner-dot small" aria-hidden="true" />}
      {status}
    </span>
  );
}

/**
 * The sandbox list kept current by the events socket: each event carries a sandbox's new
 * status, so the list changes without asking the API again.
 */

import type { Sandbox, SandboxEvent, SandboxStatus } from "@sandbox-platform/sdk";

export const STATUSES: SandboxStatus[] = [
  "pending",
  "starting",
  "running",
  "stopping",
  "stopped",
  "restarting",
  "destroying",
  "destroyed",
  "expired",
  "failed",
];

const TERMINAL: ReadonlySet<string> = new Set(["destroyed", "expired"]);
const SETTLED: ReadonlySet<string> = new Set(["running", "stopped", "destroyed", "expired", "failed"]);

export function isTerminal(status: SandboxStatus): boolean {
  return TERMINAL.has(status);
}

export function isSettled(status: SandboxStatus): boolean {
  return SETTLED.has(status);
}

export interface ListFilter {
  status?: SandboxStatus | undefined;
  environmentId?: string | undefined;
}

/** The API's rule: without a status filter, destroyed and expired sandboxes are left out. */
export function matchesFilter(sandbox: Sandbox, filter: ListFilter): boolean {
  if (filter.environmentId && sandbox.environmentId !== filter.environmentId) return false;
  if (filter.status) return sandbox.status === filter.status;
  return !isTerminal(sandbox.status);
}

/** Which actions a status allows (the API answers INVALID_STATE to the others). */
export function allowedActions(status: SandboxStatus): Set<"start" | "stop" | "restart" | "replicate" | "destroy"> {
  switch (status) {
    case "running":
      return new Set(["stop", "restart", "replicate", "destroy"]);
    case "stopped":
      return new Set(["start", "restart", "replicate", "destroy"]);
    case "failed":
      return new Set(["replicate", "destroy"]);
    case "destroyed":
    case "expired":
      return new Set(["replicate"]);
    default:
      return new Set(["destroy"]);
  }
}

/** Fields an event updates on the sandbox it names. */
export function applyEvent(sandbox: Sandbox, event: SandboxEvent): Sandbox {
  const reason = typeof event.data.reason === "string" ? event.data.reason : null;
  const next: Sandbox = { ...sandbox, status: event.status, statusReason: reason };
  if (event.status === "running") next.startedAt = event.occurredAt;
  if (event.status === "stopped") next.stoppedAt = event.occurredAt;
  if (isTerminal(event.status)) next.destroyedAt = event.occurredAt;
  return next;
}

/**
 * The list after `event`: the sandbox it names gets its new status, and leaves or stays per
 * the filter. Returns `undefined` when the event names a sandbox the list does not hold (the
 * caller fetches it once, e.g. one created in another tab).
 */
export function listAfterEvent(
  list: readonly Sandbox[],
  event: SandboxEvent,
  filter: ListFilter,
): Sandbox[] | undefined {
  const index = list.findIndex((s) => s.id === event.sandboxId);
  if (index < 0) return undefined;
  const current = list[index];
  if (!current) return undefined;
  const updated = applyEvent(current, event);
  const next = list.slice();
  if (matchesFilter(updated, filter)) next[index] = updated;
  else next.splice(index, 1);
  return next;
}

/** Whether event id `a` comes after `b` (ids are stream sequence numbers, as strings of digits). */
export function isLaterEvent(a: string, b: string | undefined): boolean {
  if (b === undefined) return true;
  return a.length !== b.length ? a.length > b.length : a > b;
}

/**
 * The latest event seen per sandbox. An answer of the API (a list, a create) can be older than
 * an event already received; laying the latest event over it keeps the newest status, and any
 * later state arrives as an event of its own.
 */
export class LatestEvents {
  private readonly events = new Map<string, SandboxEvent>();

  /** Keep `event` if it is newer than what is held; returns whether it was. */
  record(event: SandboxEvent): boolean {
    const held = this.events.get(event.sandboxId);
    if (held && !isLaterEvent(event.id, held.id)) return false;
    this.events.set(event.sandboxId, event);
    return true;
  }

  merge(sandbox: Sandbox): Sandbox {
    const event = this.events.get(sandbox.id);
    return event && event.status !== sandbox.status ? applyEvent(sandbox, event) : sandbox;
  }
}

/** Snapshots and volume mounts: waiting for a snapshot to be made, and checking a mount form. */

import type { Snapshot, VolumeMount } from "@sandbox-platform/sdk";

/** How often a snapshot being made is read again, and how long the page waits for it. */
export const SNAPSHOT_POLL_MS = 1000;
export const SNAPSHOT_DEADLINE_MS = 5 * 60 * 1000;

/**
 * Read the snapshot every `intervalMs` until it is `ready` or `failed` (returned either way),
 * throwing once `deadlineMs` has passed or `signal` aborts (the page was left); `onProgress` sees
 * each answer.
 */
export async function waitForSnapshot(
  get: (id: string) => Promise<Snapshot>,
  snapshot: Snapshot,
  options: {
    intervalMs?: number;
    deadlineMs?: number;
    signal?: AbortSignal;
    onProgress?: (s: Snapshot) => void;
    now?: () => number;
    sleep?: (ms: number) => Promise<void>;
  } = {},
): Promise<Snapshot> {
  const intervalMs = options.intervalMs ?? SNAPSHOT_POLL_MS;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const until = now() + (options.deadlineMs ?? SNAPSHOT_DEADLINE_MS);
  let current = snapshot;
  while (current.status !== "ready" && current.status !== "failed") {
    if (now() >= until) {
      throw new Error(`The snapshot "${current.name}" is still being made; look again in a moment.`);
    }
    await sleep(intervalMs);
    if (options.signal?.aborted) throw new Error("Stopped following the snapshot.");
    current = await get(current.id);
    options.onProgress?.(current);
  }
  return current;
}

/** The snapshots a sandbox can be created from (ready ones). */
export function readySnapshots(snapshots: Snapshot[]): Snapshot[] {
  return snapshots.filter((s) => s.status === "ready");
}

/** One row of the mount form, as typed. */
export interface MountRow {
  volumeId: string;
  mountPath: string;
  readOnly: boolean;
}

/**
 * The mounts to send, or a sentence saying what is wrong (a row without a volume is left out;
 * a path must be absolute, and neither a volume nor a path may be used twice).
 */
export function mountsFromRows(rows: MountRow[]): { mounts: VolumeMount[] } | { problem: string } {
  const mounts: VolumeMount[] = [];
  const paths = new Set<string>();
  const volumes = new Set<string>();
  for (const row of rows) {
    if (row.volumeId === "") continue;
    const mountPath = row.mountPath.trim();
    if (!mountPath.startsWith("/")) return { problem: `The mount path "${mountPath}" must start with /.` };
    if (paths.has(mountPath)) return { problem: `Two volumes are mounted at ${mountPath}.` };
    if (volumes.has(row.volumeId)) return { problem: "A volume can be mounted only once." };
    paths.add(mountPath);
    volumes.add(row.volumeId);
    mounts.push({ volumeId: row.volumeId, mountPath, readOnly: row.readOnly });
  }
  return { mounts };
}

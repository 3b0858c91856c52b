/** The log view's search and its bounded, de-duplicated buffer of lines. */

import type { LogLine } from "@sandbox-platform/sdk";

/** Lines kept in the browser; older ones leave the view (the API keeps the rest). */
export const MAX_LINES = 5000;

/** Add `incoming` after `lines`, dropping any `seq` already held, keeping the newest `max`. */
export function appendLines(lines: readonly LogLine[], incoming: readonly LogLine[], max: number = MAX_LINES): LogLine[] {
  const last = lines.length > 0 ? (lines[lines.length - 1]?.seq ?? 0) : 0;
  const fresh = incoming.filter((line) => line.seq > last);
  if (fresh.length === 0) return lines as LogLine[];
  const all = lines.concat(fresh);
  return all.length > max ? all.slice(all.length - max) : all;
}

export interface LogQuery {
  /** Text to find (case-insensitive), or `/pattern/flags` for a regular expression. */
  text: string;
  /** Only this stream, or both. */
  stream?: "stdout" | "stderr" | "all";
}

export interface CompiledQuery {
  test: (text: string) => boolean;
  /** Why the pattern could not be used, if it could not. */
  error?: string;
}

export function compileQuery(text: string): CompiledQuery {
  const trimmed = text.trim();
  if (trimmed === "") return { test: () => true };
  const regex = /^\/(.+)\/([imsu]*)$/.exec(trimmed);
  if (regex) {
    try {
      const pattern = new RegExp(regex[1] ?? "", regex[2]);
      return { test: (line) => pattern.test(line) };
    } catch (error) {
      return { test: () => true, error: `Not a valid regular expression: ${(error as Error).message}` };
    }
  }
  const needle = trimmed.toLowerCase();
  return { test: (line) => line.toLowerCase().includes(needle) };
}

export function filterLogs(lines: readonly LogLine[], query: LogQuery): LogLine[] {
  const compiled = compileQuery(query.text);
  const stream = query.stream ?? "all";
  return lines.filter((line) => (stream === "all" || line.stream === stream) && compiled.test(line.text));
}

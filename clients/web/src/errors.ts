/**
 * Errors as a person reads them: the API's own message (never its JSON), with the fields a
 * validation error names, and a plain sentence for failures that never reached the API.
 */

import { isSandboxApiError } from "@sandbox-platform/sdk";

export interface ReadableError {
  /** One sentence. */
  message: string;
  /** Per-field problems of a validation error (`field: message`). */
  fields: string[];
  /** The same problems with the API's field path apart (`network.allow.0`; "" for the body). */
  problems: FieldProblem[];
  /** The API's code, when there is one (for tests and support). */
  code: string | undefined;
}

export interface FieldProblem {
  path: string;
  message: string;
}

interface FieldError {
  path?: unknown;
  message?: unknown;
}

function fieldProblemsOf(details: Record<string, unknown> | undefined): FieldProblem[] {
  const errors = details?.errors;
  if (!Array.isArray(errors)) return [];
  return errors.flatMap((entry: FieldError) => {
    if (typeof entry !== "object" || typeof entry.message !== "string") return [];
    const path = typeof entry.path === "string" && entry.path !== "body" ? entry.path : "";
    return [{ path, message: entry.message }];
  });
}

function asLines(problems: FieldProblem[]): string[] {
  return problems.map(({ path, message }) => (path ? `${path}: ${message}` : message));
}

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}.`);
}

/**
 * The validation problems of `error` about the field at `prefix` (`network`, or "" for a body
 * that is the field itself), each path made relative to it: shown on that field in the form.
 */
export function problemsUnder(error: unknown, prefix: string): FieldProblem[] {
  const { problems } = readableError(error);
  if (prefix === "") return problems;
  return problems
    .filter((problem) => under(problem.path, prefix))
    .map((problem) => ({ path: problem.path.slice(prefix.length + 1), message: problem.message }));
}

/** `allow.2: …` as `"entry": …`, naming the entry the person typed rather than its index. */
export function describeAllowProblem(problem: FieldProblem, sent: readonly string[]): string {
  const match = /^allow\.(\d+)$/.exec(problem.path);
  const entry = match ? sent[Number(match[1])] : undefined;
  if (entry !== undefined) return `"${entry}": ${problem.message}`;
  return problem.path ? `${problem.path}: ${problem.message}` : problem.message;
}

/** The lines of a validation error, without those under `omit` (shown on their fields). */
export function otherFieldLines(error: unknown, omit: readonly string[]): string[] {
  const { problems } = readableError(error);
  return asLines(problems.filter((problem) => !omit.some((prefix) => under(problem.path, prefix))));
}

export function readableError(error: unknown): ReadableError {
  if (isSandboxApiError(error)) {
    switch (error.code) {
      case "NETWORK_ERROR":
        return {
          message: "The platform cannot be reached. Check that it is running, then try again.",
          fields: [],
          problems: [],
          code: error.code,
        };
      case "TIMEOUT":
        return { message: "The platform took too long to answer. Try again.", fields: [], problems: [], code: error.code };
      case "ABORTED":
        return { message: "Cancelled.", fields: [], problems: [], code: error.code };
      case "INVALID_RESPONSE":
        return {
          message: `The platform answered something unexpected (HTTP ${error.status}).`,
          fields: [],
          problems: [],
          code: error.code,
        };
      case "RATE_LIMITED": {
        const wait = error.retryAfter === undefined ? "" : ` Try again in ${Math.ceil(error.retryAfter)} s.`;
        return { message: `${error.message}${wait}`, fields: [], problems: [], code: error.code };
      }
      default: {
        const problems = fieldProblemsOf(error.details);
        return { message: error.message, fields: asLines(problems), problems, code: error.code };
      }
    }
  }
  if (error instanceof Error) return { message: error.message, fields: [], problems: [], code: undefined };
  return { message: String(error), fields: [], problems: [], code: undefined };
}

export function isUnauthorized(error: unknown): boolean {
  return isSandboxApiError(error) && error.code === "UNAUTHORIZED";
}

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
  /** The API's code, when there is one (for tests and support). */
  code: string | undefined;
}

interface FieldError {
  path?: unknown;
  message?: unknown;
}

function fieldErrors(details: Record<string, unknown> | undefined): string[] {
  const errors = details?.errors;
  if (!Array.isArray(errors)) return [];
  return errors.flatMap((entry: FieldError) => {
    if (typeof entry !== "object" || typeof entry.message !== "string") return [];
    const path = typeof entry.path === "string" && entry.path !== "body" ? `${entry.path}: ` : "";
    return [`${path}${entry.message}`];
  });
}

export function readableError(error: unknown): ReadableError {
  if (isSandboxApiError(error)) {
    switch (error.code) {
      case "NETWORK_ERROR":
        return {
          message: "The platform cannot be reached. Check that it is running, then try again.",
          fields: [],
          code: error.code,
        };
      case "TIMEOUT":
        return { message: "The platform took too long to answer. Try again.", fields: [], code: error.code };
      case "ABORTED":
        return { message: "Cancelled.", fields: [], code: error.code };
      case "INVALID_RESPONSE":
        return {
          message: `The platform answered something unexpected (HTTP ${error.status}).`,
          fields: [],
          code: error.code,
        };
      case "RATE_LIMITED": {
        const wait = error.retryAfter === undefined ? "" : ` Try again in ${Math.ceil(error.retryAfter)} s.`;
        return { message: `${error.message}${wait}`, fields: [], code: error.code };
      }
      default:
        return { message: error.message, fields: fieldErrors(error.details), code: error.code };
    }
  }
  if (error instanceof Error) return { message: error.message, fields: [], code: undefined };
  return { message: String(error), fields: [], code: undefined };
}

export function isUnauthorized(error: unknown): boolean {
  return isSandboxApiError(error) && error.code === "UNAUTHORIZED";
}

/**
 * Every failure reaches the caller as one `SandboxApiError`: the API's own envelope
 * (`{success: false, error: {code, message, details}}`), a WebSocket close code, or a problem on
 * the way (network, timeout), each with a `code` the caller can switch on.
 */

/** Codes the API sends (API.md's table). */
export type ApiErrorCode =
  | "VALIDATION_ERROR"
  | "UNAUTHORIZED"
  | "NOT_FOUND"
  | "CONFLICT"
  | "INVALID_STATE"
  | "NOT_RUNNING"
  | "PAYLOAD_TOO_LARGE"
  | "NOT_A_DIRECTORY"
  | "IS_A_DIRECTORY"
  | "STORAGE_FULL"
  | "QUOTA_EXCEEDED"
  | "RATE_LIMITED"
  | "UNAVAILABLE"
  | "UPSTREAM_UNAVAILABLE"
  | "INTERNAL_ERROR";

/**
 * Codes the SDK itself uses, all with `status` 0 except `INVALID_RESPONSE`:
 * - `NETWORK_ERROR`: no answer (connection refused or reset, DNS, a socket dropped for good);
 * - `TIMEOUT`: no answer within the request's time limit;
 * - `ABORTED`: the caller's `AbortSignal` fired;
 * - `INVALID_RESPONSE`: an answer that is not the API's envelope (e.g. a proxy's HTML page);
 *   `status` is its HTTP status;
 * - `WEBSOCKET_UNAVAILABLE`: no WebSocket implementation (pass `WebSocket` in the options).
 */
export type ClientErrorCode =
  | "NETWORK_ERROR"
  | "TIMEOUT"
  | "ABORTED"
  | "INVALID_RESPONSE"
  | "WEBSOCKET_UNAVAILABLE";

/** Any code: the ones above, or a newer one the API added (kept as sent). */
export type ErrorCode = ApiErrorCode | ClientErrorCode | (string & {});

export interface SandboxApiErrorInit {
  code: ErrorCode;
  status: number;
  message: string;
  details?: Record<string, unknown> | undefined;
  /** Seconds to wait before retrying (`Retry-After`), on `RATE_LIMITED`. */
  retryAfter?: number | undefined;
  /** The API's `x-trace-id` of the request, to find it in the platform's logs. */
  traceId?: string | undefined;
  /** The WebSocket close code, for errors that ended a socket. */
  closeCode?: number | undefined;
  cause?: unknown;
}

export class SandboxApiError extends Error {
  readonly code: ErrorCode;
  /** HTTP status; 0 when no HTTP answer was had (see `ClientErrorCode`). */
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfter: number | undefined;
  readonly traceId: string | undefined;
  readonly closeCode: number | undefined;

  constructor(init: SandboxApiErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "SandboxApiError";
    this.code = init.code;
    this.status = init.status;
    this.details = init.details;
    this.retryAfter = init.retryAfter;
    this.traceId = init.traceId;
    this.closeCode = init.closeCode;
  }
}

export function isSandboxApiError(value: unknown): value is SandboxApiError {
  return value instanceof SandboxApiError;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `Retry-After` in seconds (a number or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

/** The error an HTTP answer that is not a success stands for. */
export function errorFromResponse(status: number, headers: Headers, body: unknown): SandboxApiError {
  const traceId = headers.get("x-trace-id") ?? undefined;
  const retryAfter = parseRetryAfter(headers.get("retry-after"));
  const error = isRecord(body) ? body.error : undefined;
  if (isRecord(error) && typeof error.code === "string") {
    const details = isRecord(error.details) ? error.details : undefined;
    const fromDetails = typeof details?.retryAfter === "number" ? details.retryAfter : undefined;
    return new SandboxApiError({
      code: error.code,
      status,
      message: typeof error.message === "string" ? error.message : `HTTP ${status}`,
      details,
      retryAfter: retryAfter ?? fromDetails,
      traceId,
    });
  }
  return new SandboxApiError({
    code: "INVALID_RESPONSE",
    status,
    message: `The API answered HTTP ${status} without an error envelope.`,
    details: body === undefined ? undefined : { body },
    retryAfter,
    traceId,
  });
}

/** Close codes of the contract, and what each means as an error. */
const CLOSE_ERRORS: Record<number, { code: ApiErrorCode; status: number }> = {
  1008: { code: "VALIDATION_ERROR", status: 400 },
  1011: { code: "INTERNAL_ERROR", status: 500 },
  1014: { code: "UPSTREAM_UNAVAILABLE", status: 502 },
  4001: { code: "UNAUTHORIZED", status: 401 },
  4004: { code: "NOT_FOUND", status: 404 },
  4009: { code: "NOT_RUNNING", status: 409 },
  4029: { code: "QUOTA_EXCEEDED", status: 429 },
};

/** The error a WebSocket closed with `code` stands for (`NETWORK_ERROR` for the others). */
export function errorFromClose(code: number, reason: string): SandboxApiError {
  const known = CLOSE_ERRORS[code];
  const message = reason || `The socket closed with code ${code}.`;
  if (known) return new SandboxApiError({ ...known, message, closeCode: code, details: { closeCode: code } });
  return new SandboxApiError({
    code: "NETWORK_ERROR",
    status: 0,
    message,
    closeCode: code,
    details: { closeCode: code },
  });
}

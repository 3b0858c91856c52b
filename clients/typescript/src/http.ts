/**
 * HTTP transport: the envelope, authentication, time limits and bounded retries.
 *
 * What is retried, and why it is safe:
 * - `503 UNAVAILABLE` and `429 RATE_LIMITED` on any request: the contract says the request
 *   changed nothing (a 429 waits for its `Retry-After`);
 * - network errors only on requests that cannot act twice: reads, and lifecycle calls, which
 *   carry one `Idempotency-Key` over all their attempts so the API answers a repeat with the
 *   first result;
 * - on such a keyed retry, `409 CONFLICT` ("still in progress"): the first attempt is still
 *   running on the server.
 * An answer the API replays for a key (`Idempotent-Replayed`) is final. Time-outs are not
 * retried: the caller's time is spent.
 */

import { SandboxApiError, errorFromResponse } from "./errors.js";

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
export type QueryValue = string | number | boolean | null | undefined;
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface RetryOptions {
  /** Attempts in all, the first included (default 4). 1 turns retries off. */
  maxAttempts?: number;
  /** First back-off delay; doubled per attempt, with jitter (default 250 ms). */
  initialDelayMs?: number;
  /** Longest back-off delay (default 5 s). */
  maxDelayMs?: number;
  /** A `Retry-After` longer than this is not waited for: the error is thrown (default 60 s). */
  maxRetryAfterMs?: number;
}

export interface TransportOptions {
  baseUrl: string;
  fetch: FetchLike;
  credential: () => string | undefined;
  timeoutMs: number;
  retry: Required<RetryOptions>;
}

export interface RequestSpec {
  method: HttpMethod;
  path: string;
  query?: Record<string, QueryValue> | undefined;
  body?: unknown;
  /** A raw body (sent as `application/octet-stream`) instead of `body`'s JSON. */
  rawBody?: Uint8Array | string | undefined;
  /** Safe to send again after a network error (reads). */
  idempotent?: boolean;
  /** Sent as `Idempotency-Key`; makes the call safe to send again. */
  idempotencyKey?: string | undefined;
  /** Added to the client's time limit (e.g. a `?wait` or an exec's own timeout). */
  extraTimeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** HTTP statuses whose JSON body is returned as is instead of thrown (e.g. `/health`'s 503). */
  acceptStatuses?: readonly number[];
}

export interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

export const DEFAULT_RETRY: Required<RetryOptions> = {
  maxAttempts: 4,
  initialDelayMs: 250,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 60_000,
};

export function buildUrl(baseUrl: string, path: string, query?: Record<string, QueryValue>): string {
  const url = baseUrl.replace(/\/+$/, "") + path;
  if (!query) return url;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    params.append(name, String(value));
  }
  const text = params.toString();
  return text ? `${url}?${text}` : url;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function abortError(signal?: AbortSignal): SandboxApiError {
  return new SandboxApiError({
    code: "ABORTED",
    status: 0,
    message: "The request was aborted.",
    cause: signal?.reason,
  });
}

/** A random UUID, also where `crypto.randomUUID` is missing (Node 18 without the global). */
export function randomId(): string {
  const c = (globalThis as { crypto?: Partial<Crypto> }).crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (typeof c?.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function backoffDelay(attempt: number, retry: Required<RetryOptions>): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export class Transport {
  constructor(readonly options: TransportOptions) {}

  /** Send `spec` (retrying as described above) and return the parsed answer. */
  async send(spec: RequestSpec): Promise<Answer> {
    const { retry } = this.options;
    const mayResend = spec.idempotent === true || spec.idempotencyKey !== undefined;
    for (let attempt = 0; ; attempt++) {
      const last = attempt + 1 >= retry.maxAttempts;
      let answer: Answer;
      try {
        answer = await this.once(spec);
      } catch (error) {
        if (!last && mayResend && error instanceof SandboxApiError && error.code === "NETWORK_ERROR") {
          await sleep(backoffDelay(attempt, retry), spec.signal);
          continue;
        }
        throw error;
      }
      const accepted = spec.acceptStatuses?.includes(answer.status) ?? false;
      if ((answer.status >= 200 && answer.status < 300) || accepted) return answer;
      const error = errorFromResponse(answer.status, answer.headers, answer.body);
      const delay = last ? undefined : this.retryDelay(error, answer, spec, attempt);
      if (delay === undefined) throw error;
      await sleep(delay, spec.signal);
    }
  }

  /** How long to wait before sending again, or undefined when the error is final. */
  private retryDelay(error: SandboxApiError, answer: Answer, spec: RequestSpec, attempt: number): number | undefined {
    const { retry } = this.options;
    if (answer.headers.get("idempotent-replayed") === "true") return undefined;
    if (error.code === "RATE_LIMITED") {
      const wait = (error.retryAfter ?? 1) * 1000;
      return wait <= retry.maxRetryAfterMs ? wait : undefined;
    }
    if (error.code === "UNAVAILABLE" && answer.status === 503) {
      const wait = error.retryAfter === undefined ? backoffDelay(attempt, retry) : error.retryAfter * 1000;
      return wait <= retry.maxRetryAfterMs ? wait : undefined;
    }
    if (error.code === "CONFLICT" && spec.idempotencyKey !== undefined && attempt > 0) {
      return backoffDelay(attempt, retry);
    }
    return undefined;
  }

  /**
   * One request with a raw body and a raw answer (file bytes both ways), sent once: a body that
   * is a stream cannot be sent again. An error status becomes its typed error.
   */
  async raw(
    method: HttpMethod,
    path: string,
    query: Record<string, QueryValue>,
    init: { body?: BodyInit | null; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    const credential = this.options.credential();
    if (credential) headers.Authorization = `Bearer ${credential}`;
    const request: RequestInit & { duplex?: "half" } = {
      method,
      headers,
      body: init.body ?? null,
      signal: init.signal ?? null,
    };
    // Node's fetch streams a ReadableStream body only in half-duplex mode.
    if (init.body instanceof ReadableStream) request.duplex = "half";
    let response: Response;
    try {
      response = await this.options.fetch(buildUrl(this.options.baseUrl, path, query), request);
    } catch (error) {
      if (init.signal?.aborted) throw abortError(init.signal);
      throw new SandboxApiError({
        code: "NETWORK_ERROR",
        status: 0,
        message: `${method} ${path} failed: ${describe(error)}`,
        cause: error,
      });
    }
    if (response.status >= 400) {
      throw errorFromResponse(response.status, response.headers, parseJson(await response.text()));
    }
    return response;
  }

  private async once(spec: RequestSpec): Promise<Answer> {
    const headers: Record<string, string> = { Accept: "application/json" };
    const credential = this.options.credential();
    if (credential) headers.Authorization = `Bearer ${credential}`;
    if (spec.idempotencyKey !== undefined) headers["Idempotency-Key"] = spec.idempotencyKey;
    let body: BodyInit | undefined;
    if (spec.rawBody !== undefined) {
      headers["Content-Type"] = "application/octet-stream";
      // A copy in an ArrayBuffer of its own: what fetch takes in every runtime.
      body = typeof spec.rawBody === "string" ? spec.rawBody : new Blob([new Uint8Array(spec.rawBody)]);
    } else if (spec.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(spec.body);
    }
    const timeoutMs = this.options.timeoutMs + (spec.extraTimeoutMs ?? 0);
    const controller = new AbortController();
    const limit = { reached: false };
    const timer = setTimeout(() => {
      limit.reached = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = (): void => {
      controller.abort();
    };
    spec.signal?.addEventListener("abort", onAbort, { once: true });
    const url = buildUrl(this.options.baseUrl, spec.path, spec.query);
    try {
      if (spec.signal?.aborted) throw abortError(spec.signal);
      const response = await this.options.fetch(url, {
        method: spec.method,
        headers,
        body: body ?? null,
        signal: controller.signal,
      });
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: parseJson(text) };
    } catch (error) {
      if (error instanceof SandboxApiError) throw error;
      if (spec.signal?.aborted) throw abortError(spec.signal);
      if (limit.reached) {
        throw new SandboxApiError({
          code: "TIMEOUT",
          status: 0,
          message: `No answer from ${spec.method} ${spec.path} within ${timeoutMs} ms.`,
          cause: error,
        });
      }
      throw new SandboxApiError({
        code: "NETWORK_ERROR",
        status: 0,
        message: `${spec.method} ${spec.path} failed: ${describe(error)}`,
        cause: error,
      });
    } finally {
      clearTimeout(timer);
      spec.signal?.removeEventListener("abort", onAbort);
    }
  }
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return error.message + cause;
  }
  return String(error);
}

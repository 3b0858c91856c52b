/**
 * Server-sent events over `fetch` (EventSource cannot send an `Authorization` header): the
 * parser of the `text/event-stream` format, and a stream of sandbox events that reconnects
 * with `Last-Event-ID` when the connection drops or the server ends it.
 */

import { SandboxApiError, errorFromResponse } from "./errors.js";
import { abortError, backoffDelay, buildUrl, sleep } from "./http.js";
import type { TransportOptions } from "./http.js";
import type { ReconnectOptions, StreamOptions } from "./sockets.js";
import type { SandboxEvent } from "./types.js";

export interface ServerSentEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** Parse a `text/event-stream` body into its events (comments and retry fields are skipped). */
export async function* parseEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = "";
  let data: string[] = [];
  let id: string | undefined;
  let event = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A "\r" at the end may be the first half of a "\r\n": it waits for the next chunk.
      const held = !done && buffer.endsWith("\r") ? "\r" : "";
      const lines = (held ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
      buffer = (lines.pop() ?? "") + held;
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0) yield { id, event: event || "message", data: data.join("\n") };
          data = [];
          event = "";
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "id" && !value.includes("\0")) id = value;
        else if (field === "event") event = value;
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}

const DEFAULT_RECONNECT: Required<ReconnectOptions> = { maxAttempts: 10, initialDelayMs: 200, maxDelayMs: 5_000 };

/** Whether event id `a` comes after `b` (ids are stream sequence numbers, as decimal strings). */
export function isAfter(a: string, b: string | undefined): boolean {
  if (b === undefined) return true;
  try {
    return BigInt(a) > BigInt(b);
  } catch {
    return a !== b;
  }
}

/** Sandbox events from an SSE route, resumed after the last one seen on every reconnection. */
export class SseEventStream implements AsyncIterableIterator<SandboxEvent> {
  private readonly controller = new AbortController();
  private readonly generator: AsyncGenerator<SandboxEvent, undefined>;
  private lastId: string | undefined;

  constructor(
    private readonly transport: TransportOptions,
    private readonly path: string,
    lastEventId: string | undefined,
    private readonly options: StreamOptions,
  ) {
    this.lastId = lastEventId;
    options.signal?.addEventListener("abort", () => {
      this.controller.abort();
    }, { once: true });
    this.generator = this.run();
  }

  /** The id of the last event received: pass it as `lastEventId` to resume later. */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<SandboxEvent, undefined>> {
    return this.generator.next();
  }

  async return(): Promise<IteratorResult<SandboxEvent, undefined>> {
    this.close();
    return this.generator.return(undefined);
  }

  close(): void {
    this.controller.abort();
  }

  private async *run(): AsyncGenerator<SandboxEvent, undefined> {
    const reconnect = this.options.reconnect;
    const policy =
      reconnect === false ? undefined : { ...DEFAULT_RECONNECT, ...(typeof reconnect === "object" ? reconnect : {}) };
    const signal = this.controller.signal;
    let failures = 0;
    for (;;) {
      let healthy = false;
      let failure: SandboxApiError | undefined;
      try {
        const body = await this.open(signal);
        for await (const message of parseEventStream(body)) {
          healthy = true;
          const event = parseEvent(message.data);
          const id = event?.id ?? message.id;
          if (event === undefined || id === undefined || !isAfter(id, this.lastId)) continue;
          this.lastId = id;
          yield event;
        }
      } catch (error) {
        if (signal.aborted) return undefined;
        if (error instanceof SandboxApiError && !isTransient(error)) throw error;
        failure =
          error instanceof SandboxApiError
            ? error
            : new SandboxApiError({ code: "NETWORK_ERROR", status: 0, message: String(error), cause: error });
      }
      if (signal.aborted) return undefined;
      // The server ended the stream (a reader too slow) or the connection dropped: resume.
      failures = healthy ? 0 : failures + 1;
      if (policy === undefined || failures >= policy.maxAttempts) {
        throw failure ?? new SandboxApiError({ code: "NETWORK_ERROR", status: 0, message: "The event stream ended." });
      }
      try {
        await sleep(failures === 0 ? 0 : backoffDelay(failures - 1, { ...policy, maxRetryAfterMs: 0 }), signal);
      } catch {
        return undefined;
      }
    }
  }

  private async open(signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    const credential = this.transport.credential();
    if (credential) headers.Authorization = `Bearer ${credential}`;
    if (this.lastId !== undefined) headers["Last-Event-ID"] = this.lastId;
    let response: Response;
    try {
      response = await this.transport.fetch(buildUrl(this.transport.baseUrl, this.path), {
        method: "GET",
        headers,
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw abortError(signal);
      throw new SandboxApiError({ code: "NETWORK_ERROR", status: 0, message: String(error), cause: error });
    }
    if (!response.ok || response.body === null) {
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Kept as text.
      }
      throw errorFromResponse(response.status, response.headers, body);
    }
    return response.body;
  }
}

function isTransient(error: SandboxApiError): boolean {
  return error.code === "NETWORK_ERROR" || error.status === 503 || error.code === "RATE_LIMITED";
}

function parseEvent(data: string): SandboxEvent | undefined {
  try {
    const value = JSON.parse(data) as unknown;
    return typeof value === "object" && value !== null && "id" in value ? (value as SandboxEvent) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * WebSockets without a dependency: the browser's `WebSocket` API, which Node 22+ has as a
 * global and the `ws` package implements for older Node versions.
 *
 * `ResumableStream` turns a socket that sends JSON frames into an async iterator that survives
 * dropped connections: each frame moves a cursor (a log `seq`, an event `id`), and a new
 * connection asks to resume right after it, so nothing is lost and nothing repeated.
 */

import { SandboxApiError, errorFromClose } from "./errors.js";
import { sleep } from "./http.js";

/** The part of the WebSocket API (browser / `ws`) the SDK uses. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  send(data: string | ArrayBuffer | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: "error", listener: (event: unknown) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export const OPEN = 1;

export interface ReconnectOptions {
  /** Connection attempts in a row that may fail before the stream gives up (default 10). */
  maxAttempts?: number;
  /** First delay before reconnecting; doubled per failed attempt (default 200 ms). */
  initialDelayMs?: number;
  /** Longest delay between attempts (default 5 s). */
  maxDelayMs?: number;
}

export interface StreamOptions {
  /** Stops the stream (the iterator ends without an error). */
  signal?: AbortSignal | undefined;
  /** Reconnect after a dropped connection (default true); `false` ends with the error instead. */
  reconnect?: boolean | ReconnectOptions | undefined;
}

const DEFAULT_RECONNECT: Required<ReconnectOptions> = { maxAttempts: 10, initialDelayMs: 200, maxDelayMs: 5_000 };
/** A connection that lived this long counts as a success, even if no frame came through. */
const HEALTHY_CONNECTION_MS = 5_000;

export function resolveWebSocket(given: WebSocketConstructor | undefined): WebSocketConstructor {
  const found = given ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!found) {
    throw new SandboxApiError({
      code: "WEBSOCKET_UNAVAILABLE",
      status: 0,
      message:
        "No WebSocket implementation: pass one as the `WebSocket` option (e.g. the `ws` package's on Node < 22).",
    });
  }
  return found;
}

/** Text of a message event's data (string, or bytes decoded as UTF-8). */
export function messageText(data: unknown): string | undefined {
  if (typeof data === "string") return data;
  const bytes = messageBytes(data);
  return bytes ? new TextDecoder().decode(bytes) : undefined;
}

/** Bytes of a binary message event's data (ArrayBuffer, a typed array, or a Node Buffer). */
export function messageBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

/** What to do with one decoded frame: yield an item (or several, in order), end the stream, or nothing. */
export type FrameOutcome<T> = { item: T } | { items: T[] } | { end: true } | undefined;

export interface ResumableSpec<T> {
  WebSocket: WebSocketConstructor;
  /** The URL of the next connection (it reads the cursor the frames have moved). */
  url: () => string;
  /** Decode one JSON frame; moving the cursor is its job. */
  onFrame: (frame: unknown) => FrameOutcome<T>;
  /** Whether a close with this code ends the stream normally (instead of reconnecting). */
  endsOnClose: (code: number) => boolean;
  /** Close codes that are errors and never worth another try. */
  fatalCloseCodes: ReadonlySet<number>;
  options: StreamOptions;
}

/** An async iterator over a socket's frames that reconnects and resumes (see the module doc). */
export class ResumableStream<T> implements AsyncIterableIterator<T> {
  private readonly queue: T[] = [];
  private waiter: (() => void) | undefined;
  private socket: WebSocketLike | undefined;
  private failure: SandboxApiError | undefined;
  private done = false;
  private failedAttempts = 0;
  private readonly reconnect: Required<ReconnectOptions> | undefined;
  private readonly opened: Promise<void>;
  private markOpened: () => void = () => undefined;
  private connections = 0;

  constructor(private readonly spec: ResumableSpec<T>) {
    const { reconnect } = spec.options;
    this.reconnect =
      reconnect === false ? undefined : { ...DEFAULT_RECONNECT, ...(typeof reconnect === "object" ? reconnect : {}) };
    this.opened = new Promise((resolve) => {
      this.markOpened = resolve;
    });
    const { signal } = spec.options;
    if (signal?.aborted) {
      this.done = true;
      this.markOpened();
      return;
    }
    signal?.addEventListener("abort", () => {
      this.close();
    }, { once: true });
    this.connect();
  }

  /** Resolves once the first connection is open (or the stream has ended). */
  ready(): Promise<void> {
    return this.opened;
  }

  /** How many connections were opened so far (1 plus the reconnections). */
  get connectionCount(): number {
    return this.connections;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T, undefined>> {
    for (;;) {
      const item = this.queue.shift();
      if (item !== undefined) return { value: item, done: false };
      if (this.failure) {
        const failure = this.failure;
        this.failure = undefined;
        throw failure;
      }
      if (this.done) return { value: undefined, done: true };
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  return(): Promise<IteratorResult<T, undefined>> {
    this.close();
    this.queue.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  /** End the stream: the socket is closed and the iterator finishes. */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.markOpened();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) closeQuietly(socket);
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private fail(error: SandboxApiError): void {
    if (this.done) return;
    this.failure = error;
    this.done = true;
    this.markOpened();
    this.wake();
  }

  private connect(): void {
    if (this.done) return;
    let socket: WebSocketLike;
    try {
      socket = new this.spec.WebSocket(this.spec.url());
    } catch (error) {
      this.fail(
        error instanceof SandboxApiError
          ? error
          : new SandboxApiError({ code: "NETWORK_ERROR", status: 0, message: String(error), cause: error }),
      );
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let openedAt = 0;
    let framesSeen = false;
    socket.addEventListener("open", () => {
      openedAt = Date.now();
      this.connections += 1;
      this.markOpened();
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket || this.done) return;
      const text = messageText(event.data);
      if (text === undefined) return;
      let frame: unknown;
      try {
        frame = JSON.parse(text);
      } catch {
        return;
      }
      framesSeen = true;
      const outcome = this.spec.onFrame(frame);
      if (outcome === undefined) return;
      if ("end" in outcome) {
        this.close();
        return;
      }
      if ("items" in outcome) {
        if (outcome.items.length === 0) return;
        this.queue.push(...outcome.items);
      } else {
        this.queue.push(outcome.item);
      }
      this.wake();
    });
    socket.addEventListener("error", () => {
      // A close event follows with the code; nothing to do here.
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.done) return;
      this.socket = undefined;
      const healthy = framesSeen || (openedAt > 0 && Date.now() - openedAt >= HEALTHY_CONNECTION_MS);
      this.onClosed(event.code, event.reason, healthy);
    });
  }

  private onClosed(code: number, reason: string, healthy: boolean): void {
    if (this.spec.endsOnClose(code)) {
      this.close();
      return;
    }
    const error = errorFromClose(code, reason);
    if (this.spec.fatalCloseCodes.has(code) || this.reconnect === undefined) {
      this.fail(error);
      return;
    }
    this.failedAttempts = healthy ? 0 : this.failedAttempts + 1;
    if (this.failedAttempts >= this.reconnect.maxAttempts) {
      this.fail(error);
      return;
    }
    const { initialDelayMs, maxDelayMs } = this.reconnect;
    const delay = healthy ? 0 : Math.min(maxDelayMs, initialDelayMs * 2 ** (this.failedAttempts - 1));
    void sleep(delay, this.spec.options.signal).then(
      () => {
        this.connect();
      },
      () => {
        this.close();
      },
    );
  }
}

export function closeQuietly(socket: WebSocketLike, code = 1000, reason = ""): void {
  try {
    socket.close(code, reason);
  } catch {
    // Already closing or closed.
  }
}

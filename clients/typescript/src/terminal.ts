/**
 * An interactive shell in a sandbox over `/ws/sandboxes/:id/terminal`: output arrives as
 * binary frames, keystrokes leave as binary frames (byte-exact, never mistaken for a JSON
 * command), resizes and pings as JSON text frames.
 */

import { SandboxApiError, errorFromClose } from "./errors.js";
import { OPEN, closeQuietly, messageBytes, messageText } from "./sockets.js";
import type { WebSocketLike } from "./sockets.js";

/** How a terminal session ended: the close code (1000 when the shell exited) and its reason. */
export interface TerminalExit {
  code: number;
  reason: string;
}

type Listener<T> = (value: T) => void;

/**
 * A terminal session. Output is kept until something reads it, so the first `onData` listener
 * or iterator also gets what the shell printed before it was attached (the prompt).
 */
export class Terminal implements AsyncIterable<Uint8Array> {
  private readonly dataListeners = new Set<Listener<Uint8Array>>();
  private readonly exitListeners = new Set<Listener<TerminalExit>>();
  private readonly pongWaiters: (() => void)[] = [];
  private readonly iterators = new Set<ChunkQueue>();
  private backlog: Uint8Array[] | undefined = [];
  private exit: TerminalExit | undefined;
  private readonly encoder = new TextEncoder();
  /** Resolves when the session has ended. */
  readonly closed: Promise<TerminalExit>;
  private resolveClosed: (exit: TerminalExit) => void = () => undefined;

  /** Use `SandboxClient.openTerminal`: it resolves once the shell is ready. */
  constructor(private readonly socket: WebSocketLike) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.addEventListener("message", (event) => {
      const bytes = messageBytes(event.data);
      if (bytes) {
        this.dispatch(bytes);
        return;
      }
      const text = messageText(event.data);
      if (text !== undefined && isFrame(text, "pong")) this.pongWaiters.splice(0).forEach((resolve) => { resolve(); });
    });
    socket.addEventListener("close", (event) => {
      this.finish({ code: event.code, reason: event.reason });
    });
  }

  /** Whether the session has ended. */
  get ended(): boolean {
    return this.exit !== undefined;
  }

  /** Call `listener` with each output chunk; returns a function that removes it. */
  onData(listener: Listener<Uint8Array>): () => void {
    this.dataListeners.add(listener);
    this.flushBacklog((chunk) => { listener(chunk); });
    return () => this.dataListeners.delete(listener);
  }

  /** Call `listener` once the session ends (at once if it has); returns a function that removes it. */
  onExit(listener: Listener<TerminalExit>): () => void {
    if (this.exit) {
      listener(this.exit);
      return () => undefined;
    }
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** Type into the shell: a string is sent as UTF-8, bytes as they are. Enter is `"\r"` or `"\n"`. */
  write(data: string | Uint8Array): void {
    this.ensureOpen();
    this.socket.send(typeof data === "string" ? this.encoder.encode(data) : data);
  }

  /** Resize the PTY (1-1000 columns and rows). */
  resize(cols: number, rows: number): void {
    this.ensureOpen();
    this.socket.send(JSON.stringify({ type: "resize", cols, rows }));
  }

  /** Resolves when the API answers a ping (a round trip through it). */
  ping(): Promise<void> {
    this.ensureOpen();
    const answered = new Promise<void>((resolve) => this.pongWaiters.push(resolve));
    this.socket.send(JSON.stringify({ type: "ping" }));
    return answered;
  }

  /** End the session (the shell is hung up); resolves once the socket has closed. */
  close(): Promise<TerminalExit> {
    if (!this.exit) closeQuietly(this.socket, 1000, "closed by the client");
    return this.closed;
  }

  /** Output chunks until the session ends. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array, undefined> {
    const queue = new ChunkQueue(() => this.iterators.delete(queue));
    this.iterators.add(queue);
    this.flushBacklog((chunk) => { queue.push(chunk); });
    if (this.exit) queue.end();
    return queue;
  }

  private flushBacklog(deliver: (chunk: Uint8Array) => void): void {
    const backlog = this.backlog;
    this.backlog = undefined;
    backlog?.forEach(deliver);
  }

  private dispatch(chunk: Uint8Array): void {
    if (this.backlog) {
      this.backlog.push(chunk);
      return;
    }
    for (const listener of this.dataListeners) listener(chunk);
    for (const queue of this.iterators) queue.push(chunk);
  }

  private finish(exit: TerminalExit): void {
    if (this.exit) return;
    this.exit = exit;
    for (const queue of this.iterators) queue.end();
    for (const listener of this.exitListeners) listener(exit);
    this.exitListeners.clear();
    this.pongWaiters.length = 0;
    this.resolveClosed(exit);
  }

  private ensureOpen(): void {
    if (this.exit || this.socket.readyState !== OPEN) {
      const exit = this.exit;
      throw exit
        ? errorFromClose(exit.code, exit.reason || "The terminal session has ended.")
        : new SandboxApiError({ code: "NETWORK_ERROR", status: 0, message: "The terminal socket is not open." });
    }
  }
}

class ChunkQueue implements AsyncIterator<Uint8Array, undefined> {
  private readonly chunks: Uint8Array[] = [];
  private waiter: (() => void) | undefined;
  private finished = false;

  constructor(private readonly detach: () => void) {}

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.wake();
  }

  end(): void {
    this.finished = true;
    this.wake();
  }

  async next(): Promise<IteratorResult<Uint8Array, undefined>> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) return { value: chunk, done: false };
      if (this.finished) return { value: undefined, done: true };
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  return(): Promise<IteratorResult<Uint8Array, undefined>> {
    this.finished = true;
    this.chunks.length = 0;
    this.detach();
    return Promise.resolve({ value: undefined, done: true });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}

export function isFrame(text: string, type: string): boolean {
  try {
    const frame = JSON.parse(text) as unknown;
    return typeof frame === "object" && frame !== null && (frame as { type?: unknown }).type === type;
  } catch {
    return false;
  }
}

/**
 * A background process's socket (`/ws/sandboxes/:id/processes/:pid?since=`): output frames from
 * a seq on, then live ones, then the exit; stdin, signals and resizes go the other way.
 */

import { closeQuietly, messageText } from "./sockets.js";
import type { WebSocketLike } from "./sockets.js";
import type { ProcessExitFrame, ProcessOutputFrame, ProcessSignal } from "./types.js";

type Frame = ProcessOutputFrame | ProcessExitFrame;

/** An attached process: iterate it for its frames (it ends after the exit frame or a close). */
export class ProcessAttachment implements AsyncIterable<Frame> {
  private readonly queue: Frame[] = [];
  private waiting: (() => void) | undefined;
  private done = false;
  /** The seq of the last output frame received (reattach with `since` set to it). */
  lastSeq = 0;
  /** Resolves with the close code once the socket has closed. */
  readonly closed: Promise<number>;

  /** Use `SandboxClient.attachProcess`. */
  constructor(private readonly socket: WebSocketLike) {
    let resolveClosed: (code: number) => void = () => undefined;
    this.closed = new Promise((resolve) => {
      resolveClosed = resolve;
    });
    socket.addEventListener("message", (event) => {
      const text = messageText(event.data);
      if (text === undefined) return;
      const frame = JSON.parse(text) as Frame | { type: string };
      if (frame.type !== "output" && frame.type !== "exit") return;
      if (frame.type === "output") this.lastSeq = (frame as ProcessOutputFrame).seq;
      this.queue.push(frame as Frame);
      this.wake();
    });
    socket.addEventListener("close", (event) => {
      this.done = true;
      this.wake();
      resolveClosed(event.code);
    });
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Frame> {
    for (;;) {
      const frame = this.queue.shift();
      if (frame !== undefined) {
        yield frame;
        if (frame.type === "exit") return;
        continue;
      }
      if (this.done) return;
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
      });
    }
  }

  /** Write to the process's stdin (bytes are sent exactly; text as UTF-8). */
  sendStdin(data: string | Uint8Array): void {
    this.socket.send(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  signal(signal: ProcessSignal): void {
    this.socket.send(JSON.stringify({ type: "signal", signal }));
  }

  resize(cols: number, rows: number): void {
    this.socket.send(JSON.stringify({ type: "resize", cols, rows }));
  }

  /** Detach (the process keeps running). */
  close(): void {
    closeQuietly(this.socket);
  }
}

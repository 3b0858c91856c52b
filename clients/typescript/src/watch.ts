import { SandboxApiError, errorFromClose } from "./errors.js";
import type { WebSocketLike } from "./sockets.js";

/** One change under a watched directory (`overflow`: changes were dropped, list again). */
export interface FileChange {
  type: "created" | "modified" | "deleted" | "moved" | "overflow";
  path?: string;
  /** The old path of a `moved` change. */
  fromPath?: string;
  isDir?: boolean;
  timestamp: string | null;
}

export interface WatchFilesOptions {
  recursive?: boolean;
  /** Called for each change, in order. */
  onChange: (change: FileChange) => void;
}

/**
 * An open file watch. `ended` resolves when it ends normally (the directory was deleted, or
 * `close()`), and rejects with the error its close code stands for (e.g. `NOT_RUNNING` when the
 * sandbox stopped): a watch is never reopened by itself, since changes in between would be lost.
 */
export class FileWatch {
  readonly ended: Promise<void>;

  constructor(
    private readonly socket: WebSocketLike,
    /** The directory watched, symlinks resolved inside the sandbox. */
    readonly path: string,
    ended: Promise<void>,
  ) {
    this.ended = ended;
  }

  close(): void {
    this.socket.close(1000);
  }
}

function frameOf(data: unknown): Record<string, unknown> | undefined {
  if (typeof data !== "string") return undefined;
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Open the watch on `socket`; resolves once the server says it is in place. */
export function openWatch(socket: WebSocketLike, options: WatchFilesOptions): Promise<FileWatch> {
  return new Promise<FileWatch>((resolve, reject) => {
    let watch: FileWatch | undefined;
    let endResolve: () => void = () => undefined;
    let endReject: (error: SandboxApiError) => void = () => undefined;
    const ended = new Promise<void>((res, rej) => {
      endResolve = res;
      endReject = rej;
    });
    ended.catch(() => undefined); // handled by whoever awaits it; never an unhandled rejection
    socket.addEventListener("message", (event) => {
      const frame = frameOf(event.data);
      if (frame === undefined) return;
      if (frame.type === "ready" && watch === undefined) {
        watch = new FileWatch(socket, typeof frame.path === "string" ? frame.path : "", ended);
        resolve(watch);
      } else if (watch !== undefined && frame.type !== "pong") {
        options.onChange(frame as unknown as FileChange);
      }
    });
    socket.addEventListener("close", (event) => {
      if (watch === undefined) reject(errorFromClose(event.code, event.reason));
      else if (event.code === 1000) endResolve();
      else endReject(errorFromClose(event.code, event.reason));
    });
  });
}

/**
 * `SandboxClient`: one method per route of the API (API.md), named as in CLIENTS.md.
 */

import { SandboxApiError, errorFromClose, errorFromResponse } from "./errors.js";
import { DEFAULT_RETRY, Transport, buildUrl, randomId } from "./http.js";
import type { FetchLike, HttpMethod, QueryValue, RequestSpec, RetryOptions } from "./http.js";
import { ResumableStream, resolveWebSocket } from "./sockets.js";
import type { FrameOutcome, StreamOptions, WebSocketConstructor, WebSocketLike } from "./sockets.js";
import { SseEventStream, isAfter } from "./sse.js";
import { ProcessAttachment } from "./processes.js";
import { Terminal, isFrame } from "./terminal.js";
import { openWatch } from "./watch.js";
import type { FileWatch, WatchFilesOptions } from "./watch.js";
import type {
  ApiKey,
  AuditEvent,
  AuthResult,
  CreateApiKeyRequest,
  CreatedApiKey,
  CreatedWebhook,
  CreateWebhookRequest,
  ArchiveResult,
  Deleted,
  DeletedFile,
  FileBody,
  FileEntry,
  ReadOptions,
  UploadResult,
  WriteOptions,
  DeletedSecret,
  Environment,
  EnvironmentConfig,
  EnvironmentPatch,
  EnvironmentVersion,
  ExecResult,
  HealthStatus,
  LogLine,
  Metrics,
  NetworkPolicy,
  Page,
  PlatformInfo,
  CreateProcessRequest,
  ProcessInfo,
  ProcessOutputPage,
  ProcessSignal,
  PreviewUrl,
  PreviewUrlOptions,
  ReplicateOverrides,
  SandboxPatch,
  Sandbox,
  SandboxConfig,
  SandboxEvent,
  SandboxStatus,
  Secret,
  Snapshot,
  User,
  Volume,
  VolumeConfig,

  Webhook,
  WebhookDelivery,
} from "./types.js";

export interface SandboxClientOptions {
  /** The API's address, e.g. `http://127.0.0.1:3001`. */
  baseUrl: string;
  /** An API key (`sk_...`). */
  apiKey?: string | undefined;
  /** A JWT from `signup`/`login` (used before `apiKey` when both are set). */
  token?: string | undefined;
  /** A WebSocket implementation; default `globalThis.WebSocket` (browsers, Node 22+). */
  WebSocket?: WebSocketConstructor | undefined;
  /** A fetch implementation; default `globalThis.fetch`. */
  fetch?: FetchLike | undefined;
  /** Where the WebSockets are; default `baseUrl` with `ws:`/`wss:`. */
  wsUrl?: string | undefined;
  /** Time limit of one request, on top of any wait it asks for (default 60 s). */
  timeoutMs?: number | undefined;
  /** Retries of requests that are safe to send again (see `http.ts`). */
  retry?: RetryOptions | undefined;
}

/** `?wait` of lifecycle calls: answer once the sandbox has settled, or after `timeout` seconds. */
export interface WaitOptions {
  /** Wait for the sandbox to settle (`running`, `stopped`, `destroyed`, `expired`, `failed`); default true. */
  wait?: boolean | undefined;
  /** Longest wait in seconds (default 60, max 300); the call then answers with the status it has. */
  timeout?: number | undefined;
  /** Sent as `Idempotency-Key` (default: a new UUID per call, reused by its retries). */
  idempotencyKey?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface SandboxFilter {
  /** One status or several; without it, destroyed and expired sandboxes are left out. */
  status?: SandboxStatus | SandboxStatus[] | undefined;
  environmentId?: string | undefined;
  /** Only sandboxes whose metadata has all these entries. */
  metadata?: Record<string, string> | undefined;
}

export interface PageOptions {
  /** Items per page (1-500, default 50). */
  limit?: number | undefined;
  /** The `nextCursor` of the previous page. */
  cursor?: string | undefined;
}

export interface LogOptions {
  /** The newest `tail` lines (default 100, max 10000); with `since`, the first `tail` after it. */
  tail?: number | undefined;
  /** Only lines after this `seq`. */
  since?: number | undefined;
}

export interface StreamLogsOptions extends StreamOptions {
  /** Start after this `seq` (every stored line after it, then live ones). */
  since?: number | undefined;
  /** Without `since`: the newest `tail` lines first (default 100, 0 for live lines only). */
  tail?: number | undefined;
  /** Called with the sandbox's status on every change the socket reports. */
  onStatus?: ((status: SandboxStatus) => void) | undefined;
}

export interface SubscribeEventsOptions extends StreamOptions {
  /** Resume right after this event id; without it, only events from now on. */
  since?: string | undefined;
}

export interface SandboxEventsOptions extends StreamOptions {
  /** Resume right after this event id; without it, the sandbox's retained history first. */
  lastEventId?: string | undefined;
}

export interface ExecOptions {
  /** Seconds before the command is killed (default 30, max 300); then `timedOut` is true. */
  timeoutSeconds?: number | undefined;
  env?: Record<string, string> | undefined;
  /** Absolute directory to run in. */
  workdir?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface TerminalOptions {
  cols?: number | undefined;
  rows?: number | undefined;
  /** `raw` (default): bytes as written; `line`: the API appends Enter to each text frame. */
  mode?: "raw" | "line" | undefined;
}

/** Logs of a sandbox as they are written: an async iterator that resumes after drops. */
export type LogStream = ResumableStream<LogLine> & { readonly lastSeq: number | undefined };

/** The caller's sandbox events: an async iterator that resumes after drops. */
export type EventStream = ResumableStream<SandboxEvent> & { readonly lastEventId: string | undefined };

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_WAIT_SECONDS = 60;
const LIST_PAGE_SIZE = 200;

export class SandboxClient {
  private readonly transport: Transport;
  private readonly fetchImpl: FetchLike;
  private readonly baseUrl: string;
  private readonly webSocket: WebSocketConstructor | undefined;
  private readonly wsBase: string;
  private apiKeyValue: string | undefined;
  private tokenValue: string | undefined;

  constructor(options: SandboxClientOptions) {
    const fetchImpl = options.fetch ?? (globalThis.fetch as FetchLike | undefined)?.bind(globalThis);
    if (!fetchImpl) throw new TypeError("No fetch implementation: pass one as the `fetch` option.");
    this.fetchImpl = fetchImpl;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKeyValue = options.apiKey;
    this.tokenValue = options.token;
    this.webSocket = options.WebSocket;
    this.wsBase = (options.wsUrl ?? options.baseUrl).replace(/^http(s?):/i, "ws$1:");
    this.transport = new Transport({
      baseUrl: options.baseUrl,
      fetch: fetchImpl,
      credential: () => this.tokenValue ?? this.apiKeyValue,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      retry: { ...DEFAULT_RETRY, ...options.retry },
    });
  }

  /** The JWT in use (from the options, `signup` or `login`). */
  get token(): string | undefined {
    return this.tokenValue;
  }

  set token(value: string | undefined) {
    this.tokenValue = value;
  }

  get apiKey(): string | undefined {
    return this.apiKeyValue;
  }

  set apiKey(value: string | undefined) {
    this.apiKeyValue = value;
  }

  // Operations

  /** `GET /health`; also answers (with `status: "degraded"`) when a dependency is down. */
  async health(): Promise<HealthStatus> {
    const answer = await this.transport.send({ method: "GET", path: "/health", idempotent: true, acceptStatuses: [503] });
    return answer.body as HealthStatus;
  }

  /** `GET /info` (no credentials): version, container runtimes, features and limits of this installation. */
  getInfo(): Promise<PlatformInfo> {
    return this.call("GET", "/info");
  }

  // Auth

  /** Create an account; the client keeps its token for the calls that follow. */
  async signup(email: string, password: string): Promise<AuthResult> {
    const result = await this.call<AuthResult>("POST", "/auth/signup", { body: { email, password } });
    this.tokenValue = result.token;
    return result;
  }

  /** Log in; the client keeps the token for the calls that follow. */
  async login(email: string, password: string): Promise<AuthResult> {
    const result = await this.call<AuthResult>("POST", "/auth/login", { body: { email, password } });
    this.tokenValue = result.token;
    return result;
  }

  me(): Promise<User> {
    return this.call("GET", "/auth/me");
  }

  /**
   * Change the password: every token issued before is refused from then on. The client keeps
   * the new token the answer carries.
   */
  async changePassword(currentPassword: string, newPassword: string): Promise<AuthResult> {
    const result = await this.call<AuthResult>("POST", "/auth/password", {
      body: { currentPassword, newPassword },
    });
    this.tokenValue = result.token;
    return result;
  }

  /** Revoke the client's token: it is refused (401) from then on. */
  async logout(): Promise<void> {
    await this.call("POST", "/auth/logout");
  }

  // API keys

  /** A new API key, expiring after `expiresInDays` (1-3650) when given; its `key` is shown only in this answer. */
  createApiKey(name: string, options: { expiresInDays?: number } = {}): Promise<CreatedApiKey> {
    const body: CreateApiKeyRequest = { name };
    if (options.expiresInDays !== undefined) body.expiresInDays = options.expiresInDays;
    return this.call("POST", "/api-keys", { body });
  }

  listApiKeys(): Promise<ApiKey[]> {
    return this.collect("/api-keys");
  }

  revokeApiKey(id: string): Promise<Deleted> {
    return this.call("DELETE", `/api-keys/${seg(id)}`);
  }

  // Webhooks

  /**
   * A new webhook: the caller's sandbox events of the types in `events` (`sandbox.*` or e.g.
   * `sandbox.running`) POSTed, signed, to `url`. Its `secret` is shown only in this answer;
   * check deliveries with `verifyWebhook`.
   */
  createWebhook(url: string, events: string[] = ["sandbox.*"], options: { description?: string } = {}): Promise<CreatedWebhook> {
    const body: CreateWebhookRequest = { url, events };
    if (options.description !== undefined) body.description = options.description;
    return this.call("POST", "/webhooks", { body });
  }

  /** Every webhook of the caller (never their secrets). */
  listWebhooks(): Promise<Webhook[]> {
    return this.collect("/webhooks");
  }

  /** Delete a webhook: nothing more is delivered to it. */
  deleteWebhook(id: string): Promise<Deleted> {
    return this.call("DELETE", `/webhooks/${seg(id)}`);
  }

  /** A webhook's deliveries, oldest first: `delivered`, `retrying` or `failed`, with their attempts. */
  listWebhookDeliveries(id: string): Promise<WebhookDelivery[]> {
    return this.collect(`/webhooks/${seg(id)}/deliveries`);
  }

  // Environments

  createEnvironment(config: EnvironmentConfig): Promise<Environment> {
    return this.call("POST", "/environments", { body: config });
  }

  listEnvironments(): Promise<Environment[]> {
    return this.collect("/environments");
  }

  getEnvironment(id: string): Promise<Environment> {
    return this.call("GET", `/environments/${seg(id)}`);
  }

  /** A new version with `patch` applied; earlier versions never change. */
  updateEnvironment(id: string, patch: EnvironmentPatch): Promise<Environment> {
    return this.call("PUT", `/environments/${seg(id)}`, { body: patch });
  }

  deleteEnvironment(id: string): Promise<Deleted> {
    return this.call("DELETE", `/environments/${seg(id)}`);
  }

  /** Every version of an environment, oldest first. */
  listEnvironmentVersions(id: string): Promise<EnvironmentVersion[]> {
    return this.collect(`/environments/${seg(id)}/versions`);
  }

  /** Set (or replace) a secret; sandboxes created from then on get it as a variable. */
  setSecret(environmentId: string, key: string, value: string): Promise<Secret> {
    return this.call("POST", `/environments/${seg(environmentId)}/secrets`, { body: { key, value } });
  }

  deleteSecret(environmentId: string, key: string): Promise<DeletedSecret> {
    return this.call("DELETE", `/environments/${seg(environmentId)}/secrets/${seg(key)}`);
  }

  // Sandboxes

  /** Create a sandbox; by default the call returns once it is running (or has failed). */
  createSandbox(config: SandboxConfig, options: WaitOptions = {}): Promise<Sandbox> {
    return this.lifecycle("POST", "/sandboxes", options, config);
  }

  /** Every sandbox that matches `filter` (all pages). */
  async listSandboxes(filter: SandboxFilter = {}): Promise<Sandbox[]> {
    const all: Sandbox[] = [];
    for await (const sandbox of this.iterateSandboxes(filter)) all.push(sandbox);
    return all;
  }

  /** Sandboxes that match `filter`, fetched a page at a time as the loop goes on. */
  iterateSandboxes(filter: SandboxFilter = {}): AsyncGenerator<Sandbox, void> {
    return this.paginate("/sandboxes", sandboxQuery(filter));
  }

  /** One page of sandboxes; pass its `nextCursor` as `cursor` for the next. */
  listSandboxesPage(filter: SandboxFilter & PageOptions = {}): Promise<Page<Sandbox>> {
    return this.page("/sandboxes", { ...sandboxQuery(filter), limit: filter.limit, cursor: filter.cursor });
  }

  /** A sandbox, also once destroyed. */
  getSandbox(id: string): Promise<Sandbox> {
    return this.call("GET", `/sandboxes/${seg(id)}`);
  }

  /**
   * Change what a running (or stopped) sandbox may reach: `egress` "internet", "none" or
   * "allowlist" (`allow`: IPv4 CIDRs and hostnames). A running sandbox follows within a second.
   */
  updateSandboxNetwork(id: string, policy: NetworkPolicy): Promise<Sandbox> {
    return this.call("PATCH", `/sandboxes/${seg(id)}/network`, { body: policy });
  }

  startSandbox(id: string, options: WaitOptions = {}): Promise<Sandbox> {
    return this.lifecycle("POST", `/sandboxes/${seg(id)}/start`, options);
  }

  stopSandbox(id: string, options: WaitOptions = {}): Promise<Sandbox> {
    return this.lifecycle("POST", `/sandboxes/${seg(id)}/stop`, options);
  }

  restartSandbox(id: string, options: WaitOptions = {}): Promise<Sandbox> {
    return this.lifecycle("POST", `/sandboxes/${seg(id)}/restart`, options);
  }

  /** Pause a running sandbox: its processes are frozen, memory and files kept (`paused`). */
  pauseSandbox(id: string, options: WaitOptions = {}): Promise<Sandbox> {
    return this.lifecycle("POST", `/sandboxes/${seg(id)}/pause`, options);
  }

  /** Resume a paused sandbox: it runs on from where it was frozen. */
  resumeSandbox(id: string, options: WaitOptions = {}): Promise<Sandbox> {
    return this.lifecycle("POST", `/sandboxes/${seg(id)}/resume`, options);
  }

  /**
   * Change a sandbox's TTL (`ttlSeconds`, counted from now), replace its `metadata`, or choose
   * what happens when the TTL runs out (`onExpire`: "destroy", "stop" or "pause").
   */
  updateSandbox(id: string, patch: SandboxPatch): Promise<Sandbox> {
    return this.call("PATCH", `/sandboxes/${seg(id)}`, { body: patch });
  }

  /** Destroy a sandbox: its container is removed; by default the call waits for `destroyed`. */
  destroySandbox(id: string, options: WaitOptions = {}): Promise<Sandbox> {
    return this.lifecycle("DELETE", `/sandboxes/${seg(id)}`, options);
  }

  /** A new sandbox from the same environment version, with the source's env and `overrides`. */
  replicateSandbox(id: string, overrides: ReplicateOverrides = {}, options: WaitOptions = {}): Promise<Sandbox> {
    return this.lifecycle("POST", `/sandboxes/${seg(id)}/replicate`, options, overrides);
  }

  // Snapshots

  /**
   * Keep a sandbox's filesystem as it is now (running, paused or stopped; a running sandbox is
   * frozen only for the moment of the capture). The snapshot is `creating` until its image is
   * made; create sandboxes from it with `createSandbox({ snapshotId })`. With `{ wait: true }`
   * (default false here) the call answers once it is `ready` or `failed`; it is sent with an
   * `Idempotency-Key`, so a retry never makes a second snapshot.
   */
  createSnapshot(sandboxId: string, name?: string, options: WaitOptions = {}): Promise<Snapshot> {
    const body = name === undefined ? {} : { name };
    return this.lifecycle<Snapshot>("POST", `/sandboxes/${seg(sandboxId)}/snapshots`, {
      ...options,
      wait: options.wait ?? false,
    }, body);
  }

  /** Every snapshot of the user, newest first (of one sandbox with `sandboxId`). */
  listSnapshots(filter: { sandboxId?: string } = {}): Promise<Snapshot[]> {
    return this.collect("/snapshots", { sandboxId: filter.sandboxId });
  }

  getSnapshot(id: string): Promise<Snapshot> {
    return this.call("GET", `/snapshots/${seg(id)}`);
  }

  /** Delete a snapshot and its image (409 while a sandbox made from it is not destroyed). */
  deleteSnapshot(id: string): Promise<Deleted> {
    return this.call("DELETE", `/snapshots/${seg(id)}`);
  }

  // Ports and previews

  /**
   * A signed link to `port` of a running sandbox that a browser opens with no other credential,
   * until it expires (`expiresInSeconds`, 60-604800, default 3600) or the sandbox is destroyed.
   */
  getPreviewUrl(sandboxId: string, port: number, options: PreviewUrlOptions = {}): Promise<PreviewUrl> {
    const body = options.expiresInSeconds === undefined ? {} : { expiresInSeconds: options.expiresInSeconds };
    return this.call("POST", `/sandboxes/${seg(sandboxId)}/ports/${port}/preview-url`, { body });
  }

  /** The API's address of `path` on `port` of the sandbox (requests there need the client's credential). */
  portUrl(sandboxId: string, port: number, path = "/"): string {
    return `${this.baseUrl}/sandboxes/${seg(sandboxId)}/ports/${port}/${path.replace(/^\/+/, "")}`;
  }

  /** The WebSocket address of `path` on `port` of the sandbox, with the client's credential (`?token=`). */
  portSocketUrl(sandboxId: string, port: number, path = "/"): string {
    const [pathPart, query = ""] = path.split("?", 2) as [string, string?];
    const base = `${this.wsBase.replace(/\/+$/, "")}/sandboxes/${seg(sandboxId)}/ports/${port}/${pathPart.replace(/^\/+/, "")}`;
    const token = encodeURIComponent(this.tokenValue ?? this.apiKeyValue ?? "");
    return `${base}?${query ? `${query}&` : ""}token=${token}`;
  }

  /**
   * An HTTP request to the sandbox's server on `port`, through the API: the server's answer as
   * it is (any status, its body unread). The platform's own refusals (not running, nothing
   * listening: `UPSTREAM_UNAVAILABLE`, not yours...) are thrown as `SandboxApiError`.
   */
  async portFetch(sandboxId: string, port: number, path = "/", init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const credential = this.tokenValue ?? this.apiKeyValue;
    if (credential && !headers.has("authorization")) headers.set("authorization", `Bearer ${credential}`);
    const response = await this.fetchImpl(this.portUrl(sandboxId, port, path), { ...init, headers });
    if (PROXY_ERROR_STATUSES.has(response.status) && (response.headers.get("content-type") ?? "").startsWith("application/json")) {
      const body: unknown = await response.clone().json().catch(() => undefined);
      const error = isObject(body) && body.success === false && isObject(body.error) ? body.error : undefined;
      if (error && typeof error.code === "string" && PROXY_ERROR_CODES.has(error.code)) {
        throw errorFromResponse(response.status, response.headers, body);
      }
    }
    return response;
  }

  // Volumes

  /** A named volume of `sizeMiB` (1-102400, default 1024), a hard limit inside sandboxes. */
  createVolume(config: VolumeConfig): Promise<Volume> {
    return this.call("POST", "/volumes", { body: config });
  }

  listVolumes(): Promise<Volume[]> {
    return this.collect("/volumes");
  }

  /** One volume, with the bytes in use and the sandboxes that mount it (`attachedTo`). */
  getVolume(id: string): Promise<Volume> {
    return this.call("GET", `/volumes/${seg(id)}`);
  }

  /** Delete a volume and its data (409 while a sandbox that is not destroyed mounts it). */
  deleteVolume(id: string): Promise<Deleted> {
    return this.call("DELETE", `/volumes/${seg(id)}`);
  }

  /** Stored log lines, oldest first. */
  getLogs(id: string, options: LogOptions = {}): Promise<LogLine[]> {
    return this.call("GET", `/sandboxes/${seg(id)}/logs`, { query: { tail: options.tail, since: options.since } });
  }

  /**
   * Log lines as they are written (past ones first, per `since`/`tail`). After a dropped
   * connection the stream reconnects with `since` = the last `seq` received, so no line is lost
   * or repeated. It ends when the sandbox is destroyed or expired, or on `close()`.
   */
  streamLogs(id: string, options: StreamLogsOptions = {}): LogStream {
    let lastSeq = options.since;
    // A new line (seq past the last one seen) as the stream yields it; undefined otherwise.
    const accept = (raw: unknown): LogLine | undefined => {
      if (!isObject(raw) || typeof raw.seq !== "number") return undefined;
      if (lastSeq !== undefined && raw.seq <= lastSeq) return undefined;
      lastSeq = raw.seq;
      const line = raw as unknown as LogLine;
      return { seq: line.seq, stream: line.stream, text: line.text, timestamp: line.timestamp };
    };
    const onFrame = (frame: unknown): FrameOutcome<LogLine> => {
      if (!isObject(frame)) return undefined;
      if (frame.type === "status" && typeof frame.status === "string") {
        options.onStatus?.(frame.status);
        return undefined;
      }
      // `batch=true` frames: several consecutive lines per message.
      if (frame.type === "logs" && Array.isArray(frame.lines)) {
        const items: LogLine[] = [];
        for (const raw of frame.lines as unknown[]) {
          const line = accept(raw);
          if (line) items.push(line);
        }
        return { items };
      }
      if (frame.type !== "log") return undefined;
      const line = accept(frame);
      return line ? { item: line } : undefined;
    };
    const stream = new ResumableStream<LogLine>({
      WebSocket: resolveWebSocket(this.webSocket),
      // Lines come in batch frames (far fewer messages at thousands of lines a second); one-line
      // frames, which a server without batches sends, are read as well.
      url: () =>
        this.socketUrl(
          `/ws/sandboxes/${seg(id)}/logs`,
          lastSeq === undefined ? { tail: options.tail, batch: true } : { since: lastSeq, batch: true },
        ),
      onFrame,
      endsOnClose: (code) => code === 1000,
      fatalCloseCodes: FATAL_CLOSE_CODES,
      options,
    });
    return Object.defineProperty(stream, "lastSeq", { get: () => lastSeq, enumerable: true }) as LogStream;
  }

  /**
   * Events of all the caller's sandboxes (`/ws/events`), from now on or after `since`. After a
   * dropped connection the stream resumes right after the last event received.
   */
  subscribeEvents(options: SubscribeEventsOptions = {}): EventStream {
    let lastId = options.since;
    const onFrame = (frame: unknown): FrameOutcome<SandboxEvent> => {
      if (!isObject(frame) || typeof frame.id !== "string" || typeof frame.type !== "string") return undefined;
      if (!isAfter(frame.id, lastId)) return undefined;
      lastId = frame.id;
      return { item: frame as unknown as SandboxEvent };
    };
    const stream = new ResumableStream<SandboxEvent>({
      WebSocket: resolveWebSocket(this.webSocket),
      url: () => this.socketUrl("/ws/events", { since: lastId }),
      onFrame,
      // The server ends the feed only when the client goes away: any close is a drop.
      endsOnClose: () => false,
      fatalCloseCodes: FATAL_CLOSE_CODES,
      options,
    });
    return Object.defineProperty(stream, "lastEventId", { get: () => lastId, enumerable: true }) as EventStream;
  }

  /**
   * One sandbox's events as server-sent events (`GET /sandboxes/:id/events`): its retained
   * history first (unless `lastEventId`), then live ones; resumes with `Last-Event-ID`.
   */
  sandboxEvents(id: string, options: SandboxEventsOptions = {}): SseEventStream {
    return new SseEventStream(this.transport.options, `/sandboxes/${seg(id)}/events`, options.lastEventId, options);
  }

  /** All the caller's events as server-sent events (`GET /events`), where WebSockets cannot go. */
  eventsOverSse(options: SandboxEventsOptions = {}): SseEventStream {
    return new SseEventStream(this.transport.options, "/events", options.lastEventId, options);
  }

  /** The latest resource sample of a running sandbox (`NOT_RUNNING` otherwise). */
  getMetrics(id: string): Promise<Metrics> {
    return this.call("GET", `/sandboxes/${seg(id)}/metrics`);
  }

  /** Run a command (a string runs through `sh -c`, a list as is) and return its result. */
  exec(id: string, command: string | string[], options: ExecOptions = {}): Promise<ExecResult> {
    const body = { command, timeoutSeconds: options.timeoutSeconds, env: options.env, workdir: options.workdir };
    return this.call("POST", `/sandboxes/${seg(id)}/exec`, {
      body,
      extraTimeoutMs: (options.timeoutSeconds ?? 30) * 1000,
      signal: options.signal,
    });
  }

  // Files (running, paused or stopped sandboxes; absolute paths inside the sandbox)

  /** The entries of a directory, sorted by name. */
  listFiles(id: string, path: string): Promise<FileEntry[]> {
    return this.call("GET", `/sandboxes/${seg(id)}/files`, { query: { path } });
  }

  /** One path's entry (a symlink as itself). */
  statFile(id: string, path: string): Promise<FileEntry> {
    return this.call("GET", `/sandboxes/${seg(id)}/files/stat`, { query: { path } });
  }

  /** A file's bytes as a stream (optionally a byte range), for files too large to hold. */
  async streamFile(id: string, path: string, options: ReadOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const headers: Record<string, string> = {};
    if (options.offset !== undefined || options.length !== undefined) {
      const start = options.offset ?? 0;
      const end = options.length === undefined ? "" : String(start + options.length - 1);
      headers.Range = `bytes=${start}-${end}`;
    }
    const response = await this.transport.raw("GET", `/sandboxes/${seg(id)}/files/content`, { path }, {
      headers,
      signal: options.signal,
    });
    if (response.body === null) return new Blob([]).stream();
    return response.body;
  }

  /** A file's bytes (optionally a byte range). */
  async readFile(id: string, path: string, options: ReadOptions = {}): Promise<Uint8Array> {
    const stream = await this.streamFile(id, path, options);
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  /** Write a file (parents created); `data` may be a string, bytes, a Blob or a ReadableStream. */
  async writeFile(id: string, path: string, data: FileBody, options: WriteOptions = {}): Promise<UploadResult> {
    const mode = typeof options.mode === "number" ? options.mode.toString(8).padStart(4, "0") : options.mode;
    const response = await this.transport.raw("PUT", `/sandboxes/${seg(id)}/files/content`, { path, mode }, {
      body: data as BodyInit,
      headers: { "Content-Type": "application/octet-stream" },
      signal: options.signal,
    });
    return envelopeData(response.status, response.headers, await response.json()).data as UploadResult;
  }

  /** A tar of the file or tree at `path` (its top entry named after it), as a stream. */
  async streamArchive(id: string, path: string, options: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    const response = await this.transport.raw("GET", `/sandboxes/${seg(id)}/files/archive`, { path }, {
      signal: options.signal,
    });
    if (response.body === null) return new Blob([]).stream();
    return response.body;
  }

  /** A tar of the file or tree at `path`, whole. */
  async downloadArchive(id: string, path: string): Promise<Uint8Array> {
    return new Uint8Array(await new Response(await this.streamArchive(id, path)).arrayBuffer());
  }

  /** Extract a tar into the directory `path`; refused whole (400) if an entry would land outside it. */
  async uploadArchive(
    id: string,
    path: string,
    tar: FileBody,
    options: { signal?: AbortSignal } = {},
  ): Promise<ArchiveResult> {
    const response = await this.transport.raw("PUT", `/sandboxes/${seg(id)}/files/archive`, { path }, {
      body: tar as BodyInit,
      headers: { "Content-Type": "application/x-tar" },
      signal: options.signal,
    });
    return envelopeData(response.status, response.headers, await response.json()).data as ArchiveResult;
  }

  /** Delete a file, a symlink, or a directory (non-empty ones with `recursive`). */
  deleteFile(id: string, path: string, options: { recursive?: boolean } = {}): Promise<DeletedFile> {
    return this.call("DELETE", `/sandboxes/${seg(id)}/files`, { query: { path, recursive: options.recursive } });
  }

  /** Create a directory (with `parents`, its missing parents too). */
  makeDirectory(id: string, path: string, options: { parents?: boolean } = {}): Promise<FileEntry> {
    return this.call("POST", `/sandboxes/${seg(id)}/files/mkdir`, { body: { path, parents: options.parents ?? false } });
  }

  /** Move or rename; what is at `to` is replaced only with `overwrite`. */
  moveFile(id: string, from: string, to: string, options: { overwrite?: boolean } = {}): Promise<FileEntry> {
    return this.call("POST", `/sandboxes/${seg(id)}/files/move`, {
      body: { from, to, overwrite: options.overwrite ?? false },
    });
  }

  /** Watch a directory of a running sandbox; resolves once the watch is in place. */
  watchFiles(id: string, path: string, options: WatchFilesOptions): Promise<FileWatch> {
    const WebSocketImpl = resolveWebSocket(this.webSocket);
    const url = this.socketUrl(`/ws/sandboxes/${seg(id)}/files/watch`, {
      path,
      recursive: options.recursive ?? false,
    });
    let socket: WebSocketLike;
    try {
      socket = new WebSocketImpl(url);
    } catch (error) {
      return Promise.reject(
        new SandboxApiError({ code: "NETWORK_ERROR", status: 0, message: String(error), cause: error }),
      );
    }
    return openWatch(socket, options);
  }

  /** Open a shell in a running sandbox; resolves once it is ready for input. */
  openTerminal(id: string, options: TerminalOptions = {}): Promise<Terminal> {
    const WebSocketImpl = resolveWebSocket(this.webSocket);
    const url = this.socketUrl(`/ws/sandboxes/${seg(id)}/terminal`, {
      cols: options.cols,
      rows: options.rows,
      mode: options.mode,
    });
    return new Promise<Terminal>((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = new WebSocketImpl(url);
      } catch (error) {
        reject(new SandboxApiError({ code: "NETWORK_ERROR", status: 0, message: String(error), cause: error }));
        return;
      }
      socket.binaryType = "arraybuffer";
      const terminal = new Terminal(socket);
      let ready = false;
      socket.addEventListener("message", (event) => {
        if (!ready && typeof event.data === "string" && isFrame(event.data, "ready")) {
          ready = true;
          resolve(terminal);
        }
      });
      socket.addEventListener("close", (event) => {
        if (!ready) reject(errorFromClose(event.code, event.reason));
      });
    });
  }

  // Processes

  /** Start a background process (a string runs through `sh -c`); it runs on, its output kept. */
  createProcess(id: string, config: CreateProcessRequest, options: { signal?: AbortSignal } = {}): Promise<ProcessInfo> {
    return this.call("POST", `/sandboxes/${seg(id)}/processes`, { body: config, signal: options.signal });
  }

  /** The sandbox's running processes and its last 100 ended ones, newest first. */
  async listProcesses(id: string, options: { status?: ProcessInfo["status"] } = {}): Promise<ProcessInfo[]> {
    return (await this.page<ProcessInfo>(`/sandboxes/${seg(id)}/processes`, { status: options.status })).data;
  }

  getProcess(id: string, processId: string): Promise<ProcessInfo> {
    return this.call("GET", `/sandboxes/${seg(id)}/processes/${seg(processId)}`);
  }

  /** Kept output after seq `since` (default 0): call again from `nextSince` for more. */
  async getProcessOutput(
    id: string,
    processId: string,
    options: { since?: number; limit?: number; encoding?: "text" | "base64" } = {},
  ): Promise<ProcessOutputPage> {
    const answer = await this.transport.send({
      method: "GET",
      path: `/sandboxes/${seg(id)}/processes/${seg(processId)}/output`,
      query: { since: options.since, limit: options.limit, encoding: options.encoding },
      idempotent: true,
    });
    const body = envelopeData(answer.status, answer.headers, answer.body) as unknown as ProcessOutputPage;
    return { data: body.data, nextSince: body.nextSince, truncatedBefore: body.truncatedBefore };
  }

  /** Write to a process's stdin (`eof: true` closes it afterwards). */
  sendProcessStdin(
    id: string,
    processId: string,
    data: string | Uint8Array,
    options: { eof?: boolean } = {},
  ): Promise<{ written: number }> {
    return this.call("POST", `/sandboxes/${seg(id)}/processes/${seg(processId)}/stdin`, {
      rawBody: data,
      query: { eof: options.eof ? true : undefined },
    });
  }

  signalProcess(id: string, processId: string, signal: ProcessSignal): Promise<ProcessInfo> {
    return this.call("POST", `/sandboxes/${seg(id)}/processes/${seg(processId)}/signal`, { body: { signal } });
  }

  /** Resize a process's terminal (processes started with `tty: true`). */
  resizeProcess(id: string, processId: string, cols: number, rows: number): Promise<ProcessInfo> {
    return this.call("POST", `/sandboxes/${seg(id)}/processes/${seg(processId)}/resize`, { body: { cols, rows } });
  }

  /** The process's socket: output from `since` (default 0), then live, then its exit;
   * `encoding: "base64"` gives each chunk's exact bytes in `data`. */
  attachProcess(
    id: string,
    processId: string,
    options: { since?: number; encoding?: "text" | "base64" } = {},
  ): ProcessAttachment {
    const WebSocketImpl = resolveWebSocket(this.webSocket);
    const url = this.socketUrl(`/ws/sandboxes/${seg(id)}/processes/${seg(processId)}`, {
      since: options.since,
      encoding: options.encoding,
    });
    const socket = new WebSocketImpl(url);
    socket.binaryType = "arraybuffer";
    return new ProcessAttachment(socket);
  }

  // Audit

  /** The caller's audit trail (what was done with the account), newest first. */
  listAuditEvents(options: PageOptions = {}): Promise<Page<AuditEvent>> {
    return this.page("/audit", { limit: options.limit, cursor: options.cursor });
  }

  // Plumbing

  private async call<T>(
    method: HttpMethod,
    path: string,
    extra: Omit<RequestSpec, "method" | "path"> = {},
  ): Promise<T> {
    const answer = await this.transport.send({ method, path, idempotent: method === "GET", ...extra });
    return envelopeData(answer.status, answer.headers, answer.body).data as T;
  }

  private lifecycle<T = Sandbox>(method: HttpMethod, path: string, options: WaitOptions, body?: unknown): Promise<T> {
    const wait = options.wait ?? true;
    const timeout = options.timeout ?? DEFAULT_WAIT_SECONDS;
    return this.call<T>(method, path, {
      body,
      query: wait ? { wait: true, timeout } : undefined,
      idempotencyKey: options.idempotencyKey ?? randomId(),
      extraTimeoutMs: wait ? timeout * 1000 : 0,
      signal: options.signal,
    });
  }

  private async page<T>(path: string, query: Record<string, QueryValue>): Promise<Page<T>> {
    const answer = await this.transport.send({ method: "GET", path, query, idempotent: true });
    const { data, nextCursor } = envelopeData(answer.status, answer.headers, answer.body);
    return { data: data as T[], nextCursor: nextCursor ?? null };
  }

  private async *paginate<T>(path: string, query: Record<string, QueryValue> = {}): AsyncGenerator<T, void> {
    let cursor: string | undefined;
    do {
      const page = await this.page<T>(path, { ...query, limit: LIST_PAGE_SIZE, cursor });
      yield* page.data;
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }

  private async collect<T>(path: string, query: Record<string, QueryValue> = {}): Promise<T[]> {
    const all: T[] = [];
    for await (const item of this.paginate<T>(path, query)) all.push(item);
    return all;
  }

  private socketUrl(path: string, query: Record<string, QueryValue>): string {
    return buildUrl(this.wsBase, path, { ...query, token: this.tokenValue ?? this.apiKeyValue });
  }
}

/** Statuses and codes of the port proxy's own refusals (anything else is the sandbox's answer). */
const PROXY_ERROR_STATUSES: ReadonlySet<number> = new Set([400, 401, 404, 409, 429, 502, 503]);
const PROXY_ERROR_CODES: ReadonlySet<string> = new Set([
  "VALIDATION_ERROR",
  "UNAUTHORIZED",
  "NOT_FOUND",
  "NOT_RUNNING",
  "RATE_LIMITED",
  "UPSTREAM_UNAVAILABLE",
  "UNAVAILABLE",
]);

/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([1008, 4001, 4004, 4009, 4029]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function seg(value: string): string {
  return encodeURIComponent(value);
}

function sandboxQuery(filter: SandboxFilter): Record<string, QueryValue> {
  const query: Record<string, QueryValue> = {
    status: Array.isArray(filter.status) ? filter.status.join(",") : filter.status,
    environmentId: filter.environmentId,
  };
  for (const [key, value] of Object.entries(filter.metadata ?? {})) query[`metadata.${key}`] = value;
  return query;
}

/** `{success: true, data, nextCursor?}`: the shape of every success of the API. */
interface Envelope {
  data: unknown;
  nextCursor?: string | null;
}

function envelopeData(status: number, headers: Headers, body: unknown): Envelope {
  if (isObject(body) && body.success === true && "data" in body) return body as unknown as Envelope;
  throw new SandboxApiError({
    code: "INVALID_RESPONSE",
    status,
    message: "The API answered without its success envelope.",
    details: { body },
    traceId: headers.get("x-trace-id") ?? undefined,
  });
}

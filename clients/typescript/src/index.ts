/**
 * `@sandbox-platform/sdk`: a typed client of the Sandbox Platform API for Node 18+ and browsers.
 */

export { SandboxClient } from "./client.js";
export type {
  EventStream,
  ExecOptions,
  LogOptions,
  LogStream,
  PageOptions,
  SandboxClientOptions,
  SandboxEventsOptions,
  SandboxFilter,
  StreamLogsOptions,
  SubscribeEventsOptions,
  TerminalOptions,
  WaitOptions,
} from "./client.js";
export { SandboxApiError, isSandboxApiError } from "./errors.js";
export type { ApiErrorCode, ClientErrorCode, ErrorCode } from "./errors.js";
export type { FetchLike, RetryOptions } from "./http.js";
export { ResumableStream } from "./sockets.js";
export type { ReconnectOptions, StreamOptions, WebSocketConstructor, WebSocketLike } from "./sockets.js";
export { SseEventStream } from "./sse.js";
export { Terminal } from "./terminal.js";
export { FileWatch } from "./watch.js";
export type { FileChange, WatchFilesOptions } from "./watch.js";
export { ProcessAttachment } from "./processes.js";
export { DEFAULT_WEBHOOK_TOLERANCE_SECONDS, WebhookVerificationError, verifyWebhook } from "./webhooks.js";
export type { VerifyWebhookOptions, WebhookHeaders } from "./webhooks.js";
export type { TerminalExit } from "./terminal.js";
export type * from "./types.js";
export type { components, operations, paths } from "./generated/openapi.js";

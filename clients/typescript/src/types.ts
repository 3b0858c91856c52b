/**
 * The objects of the API. HTTP request and response bodies are the types generated from the
 * API's OpenAPI document (`src/generated/openapi.ts`, `npm run generate`); socket frames and
 * the operations routes, which the document does not describe, are written here.
 */

import type { components } from "./generated/openapi.js";

type Schemas = components["schemas"];

/** Every status a sandbox can have (newer ones the API may add are kept as sent). */
export type SandboxStatus =
  | "pending"
  | "starting"
  | "running"
  | "stopping"
  | "stopped"
  | "restarting"
  | "pausing"
  | "paused"
  | "resuming"
  | "destroying"
  | "destroyed"
  | "expired"
  | "failed"
  | (string & {});

export type User = Schemas["UserOut"];
export type AuthResult = Schemas["AuthResult"];
export type ApiKey = Schemas["ApiKeyOut"];
export type CreatedApiKey = Schemas["CreatedApiKey"];
export type CreateApiKeyRequest = Schemas["CreateApiKeyRequest"];
export type ChangePasswordRequest = Schemas["ChangePasswordRequest"];
export type LoggedOut = Schemas["LoggedOut"];

export type Environment = Schemas["EnvironmentOut"];
export type EnvironmentVersion = Schemas["VersionOut"];
export type EnvironmentConfig = Schemas["CreateEnvironmentRequest"];
export type EnvironmentPatch = Schemas["UpdateEnvironmentRequest"];
export type PortSpec = Schemas["PortSpec"];
/** What a sandbox may reach (environments' `network`, and `updateSandboxNetwork`). */
export type NetworkPolicy = Schemas["NetworkPolicyIn"];
export type NetworkPolicyOut = Schemas["NetworkPolicyOut"];
export type Secret = Schemas["SecretOut"];
export type DeletedSecret = Schemas["DeletedSecret"];
export type Deleted = Schemas["Deleted"];

export type Sandbox = Omit<Schemas["SandboxOut"], "status"> & { status: SandboxStatus };
export type Endpoint = Schemas["Endpoint"];
export type SandboxConfig = Schemas["CreateSandboxRequest"];
export type ReplicateOverrides = Schemas["ReplicateSandboxRequest"];
/** A volume mounted into a sandbox (`volumes` of `createSandbox` and `replicateSandbox`). */
export type VolumeMount = Schemas["VolumeMountIn"];

/** A sandbox's filesystem kept as an image: `creating`, then `ready` or `failed`. */
export type Snapshot = Schemas["SnapshotOut"];
export type Volume = Schemas["VolumeOut"];

/** A signed link to one port of a sandbox (`getPreviewUrl`). */
export type PreviewUrl = Schemas["PreviewUrlOut"];
/** `getPreviewUrl`: `expiresInSeconds` 60-604800 (default 3600). */
export type PreviewUrlOptions = Schemas["PreviewUrlRequest"];
export type VolumeConfig = Schemas["CreateVolumeRequest"];

/** `updateSandbox`: `ttlSeconds` (from now), `metadata` (replaces), `onExpire`. */
export type SandboxPatch = Schemas["UpdateSandboxRequest"];

export type LogLine = Schemas["LogLineOut"];
export type FileEntry = Schemas["FileEntryOut"];
export type UploadResult = Schemas["UploadOut"];
export type DeletedFile = Schemas["DeletedOut"];
export type ArchiveResult = Schemas["ArchiveOut"];
/** What an upload sends: text, bytes (any Uint8Array), a Blob, or a ReadableStream of bytes. */
export type FileBody = BodyInit | Uint8Array;

/** A byte range of a download: `length` bytes from `offset` (to the end without `length`). */
export interface ReadOptions {
  offset?: number;
  length?: number;
  signal?: AbortSignal;
}

export interface WriteOptions {
  /** Permission bits, as a number (0o644) or octal text ("0644"). */
  mode?: number | string;
  signal?: AbortSignal;
}
export type Metrics = Schemas["MetricsOut"];
export type ExecResult = Schemas["ExecOut"];
export type ExecRequest = Schemas["ExecRequestBody"];
export type AuditEvent = Schemas["AuditEvent"];
export type PlatformInfo = Schemas["InfoOut"];
export type PlatformLimits = Schemas["InfoLimits"];

export type Webhook = Schemas["WebhookOut"];
export type CreatedWebhook = Schemas["CreatedWebhook"];
export type CreateWebhookRequest = Schemas["CreateWebhookRequest"];
export type WebhookDelivery = Schemas["DeliveryOut"];

/** One page of a collection: its items and the cursor of the next page (null on the last). */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** `GET /health`: each dependency `"ok"` or `"down"`; `status` is `"degraded"` when any is down. */
export interface HealthStatus {
  status: "ok" | "degraded";
  db: "ok" | "down";
  nats: "ok" | "down";
  docker: "ok" | "down";
  timestamp: string;
}

/** A sandbox event (`/ws/events`, SSE): `type` is `sandbox.<status>`; `id` resumes after it. */
export interface SandboxEvent {
  id: string;
  type: string;
  sandboxId: string;
  status: SandboxStatus;
  occurredAt: string;
  data: Record<string, unknown>;
}

/** A frame of the logs socket: a line, or the sandbox's new status. */
export type LogFrame =
  | ({ type: "log" } & LogLine)
  | { type: "status"; status: SandboxStatus };

/** A background process: `running`, then `exited` or `killed` (timeout, sandbox stopped). */
export type ProcessInfo = Schemas["ProcessOut"];
export type CreateProcessRequest = Schemas["CreateProcessRequest"];
export type ProcessSignal = Schemas["SignalRequest"]["signal"];
export type ProcessOutputChunk = Schemas["OutputChunkOut"];
/** `getProcessOutput`: the chunks after `since`, where to go on from, where kept output begins. */
export interface ProcessOutputPage {
  data: ProcessOutputChunk[];
  nextSince: number;
  truncatedBefore: number | null;
}
/** A process socket's output frame. */
export interface ProcessOutputFrame {
  type: "output";
  seq: number;
  stream: "stdout" | "stderr" | "pty";
  /** The chunk as UTF-8 text (the default `encoding`). */
  text: string;
  /** With `encoding: "base64"`: the chunk's exact bytes, in base64 (then `text` is absent). */
  data?: string;
  /** When the chunk was stored (ISO 8601). */
  timestamp?: string | null;
}
/** A process socket's last frame. */
export interface ProcessExitFrame {
  type: "exit";
  status: "exited" | "killed";
  exitCode: number | null;
  signal: string | null;
}

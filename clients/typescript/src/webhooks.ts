/**
 * Checking a webhook delivery on the receiving side, with Web Crypto (`crypto.subtle`), so it
 * runs in Node 18+ and in browsers alike.
 *
 * A delivery is a POST of an event object with `Sbx-Webhook-Id`, `Sbx-Event-Id`, `Sbx-Timestamp`
 * and `Sbx-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">` keyed with the webhook's
 * secret. Deliveries are at least once: deduplicate on `Sbx-Event-Id` (the event's `id`).
 */

import type { SandboxEvent } from "./types.js";

/** Largest gap, in seconds, between a delivery's timestamp and the receiver's clock by default. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

/** The delivery is not signed with the secret, its signature is malformed, or it is too old. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

/** Request headers as a `Headers` object (fetch, service workers) or a plain record (Node's `req.headers`). */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** Largest accepted age (or clock skew) of a delivery, in seconds; default 300. */
  toleranceSeconds?: number;
  /** The receiver's clock, in milliseconds (for tests); default `Date.now()`. */
  now?: number;
}

function header(headers: WebhookHeaders, name: string): string {
  let value: string | string[] | null | undefined;
  if (typeof Headers !== "undefined" && headers instanceof Headers) {
    value = headers.get(name);
  } else {
    const lowered = name.toLowerCase();
    const record = headers as Record<string, string | string[] | undefined>;
    const key = Object.keys(record).find((k) => k.toLowerCase() === lowered);
    value = key === undefined ? undefined : record[key];
  }
  if (Array.isArray(value)) value = value[0];
  if (value === undefined || value === null) throw new WebhookVerificationError(`The ${name} header is missing.`);
  return value;
}

/** Web Crypto: the global one (browsers, Node 19+), else Node 18's `node:crypto` webcrypto. */
async function subtleCrypto(): Promise<SubtleCrypto> {
  const global = (globalThis as { crypto?: Crypto }).crypto;
  if (global?.subtle !== undefined) return global.subtle;
  // Named through a variable: bundlers for browsers leave it alone, and the SDK's types need no
  // Node declarations (browsers never get here).
  const specifier = "node:crypto";
  const nodeCrypto = (await import(/* @vite-ignore */ specifier)) as { webcrypto: { subtle: SubtleCrypto } };
  return nodeCrypto.webcrypto.subtle;
}

function toHex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares in time independent of where the strings first differ. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * The delivered event, once its signature matches `secret` and its timestamp is within the
 * tolerance of now; rejects with `WebhookVerificationError` otherwise. `body` is the raw request
 * body exactly as received (a string, or its bytes).
 */
export async function verifyWebhook(
  body: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string,
  options: VerifyWebhookOptions = {},
): Promise<SandboxEvent> {
  const tolerance = options.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
  const timestamp = header(headers, "Sbx-Timestamp");
  const signature = header(headers, "Sbx-Signature");
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("The Sbx-Timestamp header is not a number.");
  const now = (options.now ?? Date.now()) / 1000;
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new WebhookVerificationError("The delivery's timestamp is outside the tolerance.");
  }
  const encoder = new TextEncoder();
  const bodyBytes = typeof body === "string" ? encoder.encode(body) : body;
  const prefix = encoder.encode(`${timestamp}.`);
  const signed = new Uint8Array(prefix.length + bodyBytes.length);
  signed.set(prefix, 0);
  signed.set(bodyBytes, prefix.length);
  const subtle = await subtleCrypto();
  const key = await subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const expected = toHex(await subtle.sign("HMAC", key, signed));
  const offered = signature
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.startsWith("v1="))
    .map((part) => part.slice(3));
  if (!offered.some((candidate) => sameText(candidate, expected))) {
    throw new WebhookVerificationError("The signature does not match the secret.");
  }
  return JSON.parse(new TextDecoder().decode(bodyBytes)) as SandboxEvent;
}

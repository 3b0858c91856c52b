/**
 * The SDK's own logic with a scripted `fetch` (no platform needed): what is retried and with
 * which `Idempotency-Key`, how answers become errors, pagination, and the SSE parser.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createHmac } from "node:crypto";

import { SandboxApiError, SandboxClient, WebhookVerificationError, verifyWebhook } from "../src/index.js";
import type { FetchLike } from "../src/index.js";
import { parseEventStream } from "../src/sse.js";

interface Sent {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

type Reply = Response | Error;

/** A fetch that answers from `replies` in order and records what it was sent. */
function scriptedFetch(replies: Reply[]): { fetch: FetchLike; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetch: FetchLike = (url, init) => {
    sent.push({
      url,
      method: init.method ?? "GET",
      headers: init.headers as Record<string, string>,
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
    });
    const reply = replies.shift();
    if (reply === undefined) return Promise.reject(new Error("no more scripted replies"));
    return reply instanceof Error ? Promise.reject(reply) : Promise.resolve(reply);
  };
  return { fetch, sent };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

const ok = (data: unknown, extra: Record<string, unknown> = {}): Response => json(200, { success: true, data, ...extra });
const fail = (status: number, code: string, headers: Record<string, string> = {}): Response =>
  json(status, { success: false, error: { code, message: `${code} happened`, details: { why: code } } }, headers);

function client(replies: Reply[]): { client: SandboxClient; sent: Sent[] } {
  const { fetch, sent } = scriptedFetch(replies);
  const c = new SandboxClient({
    baseUrl: "http://api.test/",
    apiKey: "sk_test",
    fetch,
    retry: { initialDelayMs: 1, maxDelayMs: 2 },
  });
  return { client: c, sent };
}

const TEST_TIMEOUT_MS = 30_000;
const SANDBOX = { id: "00000000-0000-4000-8000-000000000001", status: "running" };

describe("requests", { timeout: TEST_TIMEOUT_MS }, () => {
  it("sends the credential, the wait and one Idempotency-Key over every retry of a lifecycle call", async () => {
    const { client: c, sent } = client([
      new TypeError("fetch failed"),
      fail(503, "UNAVAILABLE"),
      fail(409, "CONFLICT"),
      ok(SANDBOX),
    ]);
    const sandbox = await c.startSandbox(SANDBOX.id, { timeout: 5 });
    assert.equal(sandbox.status, "running");
    assert.equal(sent.length, 4);
    const keys = new Set(sent.map((s) => s.headers["Idempotency-Key"]));
    assert.equal(keys.size, 1);
    assert.match([...keys][0] ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(sent[0]?.url, `http://api.test/sandboxes/${SANDBOX.id}/start?wait=true&timeout=5`);
    assert.equal(sent[0].headers.Authorization, "Bearer sk_test");
  });

  it("waits for Retry-After on RATE_LIMITED and never retries QUOTA_EXCEEDED", async () => {
    const limited = client([fail(429, "RATE_LIMITED", { "Retry-After": "0" }), ok(SANDBOX)]);
    assert.equal((await limited.client.getSandbox(SANDBOX.id)).id, SANDBOX.id);
    assert.equal(limited.sent.length, 2);

    const quota = client([fail(429, "QUOTA_EXCEEDED"), ok(SANDBOX)]);
    const error = await quota.client.createSandbox({ environmentId: SANDBOX.id }).catch((e: unknown) => e);
    assert.ok(error instanceof SandboxApiError);
    assert.equal(error.code, "QUOTA_EXCEEDED");
    assert.equal(quota.sent.length, 1);
  });

  it("gives up after the last attempt and does not resend calls that could act twice", async () => {
    const busy = client([503, 503, 503, 503, 503].map(() => fail(503, "UNAVAILABLE")));
    const error = await busy.client.getSandbox(SANDBOX.id).catch((e: unknown) => e);
    assert.ok(error instanceof SandboxApiError);
    assert.equal(error.code, "UNAVAILABLE");
    assert.equal(busy.sent.length, 4);

    const exec = client([new TypeError("fetch failed"), ok({})]);
    const lost = await exec.client.exec(SANDBOX.id, "true").catch((e: unknown) => e);
    assert.ok(lost instanceof SandboxApiError);
    assert.equal(lost.code, "NETWORK_ERROR");
    assert.equal(lost.status, 0);
    assert.equal(exec.sent.length, 1);
  });

  it("does not retry an answer the API replays for an Idempotency-Key", async () => {
    const { client: c, sent } = client([fail(503, "UNAVAILABLE", { "Idempotent-Replayed": "true" }), ok(SANDBOX)]);
    const error = await c.stopSandbox(SANDBOX.id).catch((e: unknown) => e);
    assert.ok(error instanceof SandboxApiError);
    assert.equal(error.code, "UNAVAILABLE");
    assert.equal(sent.length, 1);
  });

  it("turns error envelopes and foreign answers into SandboxApiError", async () => {
    const { client: c } = client([
      fail(404, "NOT_FOUND", { "x-trace-id": "trace-1" }),
      new Response("<html>bad gateway</html>", { status: 502 }),
    ]);
    const notFound = await c.getEnvironment("x").catch((e: unknown) => e);
    assert.ok(notFound instanceof SandboxApiError);
    assert.deepEqual(
      [notFound.code, notFound.status, notFound.message, notFound.details, notFound.traceId],
      ["NOT_FOUND", 404, "NOT_FOUND happened", { why: "NOT_FOUND" }, "trace-1"],
    );
    const foreign = await c.getEnvironment("x").catch((e: unknown) => e);
    assert.ok(foreign instanceof SandboxApiError);
    assert.equal(foreign.code, "INVALID_RESPONSE");
    assert.equal(foreign.status, 502);
  });

  it("follows every page and keeps the token of a login", async () => {
    const { client: c, sent } = client([
      ok({ user: { id: "u", email: "a@b.c", createdAt: "t" }, token: "jwt-1" }),
      ok([SANDBOX], { nextCursor: "c1" }),
      ok([{ ...SANDBOX, id: "2" }], { nextCursor: null }),
    ]);
    await c.login("a@b.c", "password123");
    assert.equal(c.token, "jwt-1");
    const all = await c.listSandboxes({ status: ["running", "stopped"], metadata: { team: "a b" } });
    assert.deepEqual(all.map((s) => s.id), [SANDBOX.id, "2"]);
    assert.equal(sent[1]?.headers.Authorization, "Bearer jwt-1");
    const second = new URL(sent[2]?.url ?? "");
    assert.equal(second.searchParams.get("cursor"), "c1");
    assert.equal(second.searchParams.get("status"), "running,stopped");
    assert.equal(second.searchParams.get("metadata.team"), "a b");
  });
});

describe("server-sent events", { timeout: TEST_TIMEOUT_MS }, () => {
  it("parses events split anywhere, CRLF included, and skips comments", async () => {
    const text = ": subscribed\r\n\r\nid: 7\r\ndata: {\"a\":1}\r\n\r\n: heartbeat\n\nid: 8\ndata: line one\ndata: line two\n\n";
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < text.length; i += 3) controller.enqueue(encoder.encode(text.slice(i, i + 3)));
        controller.close();
      },
    });
    const events = [];
    for await (const event of parseEventStream(body)) events.push(event);
    assert.deepEqual(events, [
      { id: "7", event: "message", data: '{"a":1}' },
      { id: "8", event: "message", data: "line one\nline two" },
    ]);
  });
});

describe("verifyWebhook", () => {
  const secret = "whsec_test-secret";
  const body = JSON.stringify({
    id: "42",
    type: "sandbox.running",
    sandboxId: "s1",
    status: "running",
    occurredAt: "2026-01-01T00:00:00.000Z",
    data: {},
  });
  const timestamp = "1767225600";
  const now = Number(timestamp) * 1000;
  const signature = "v1=" + createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");

  it("returns the event of a delivery signed with the secret", async () => {
    const headers = { "sbx-timestamp": timestamp, "sbx-signature": signature };
    const event = await verifyWebhook(body, headers, secret, { now });
    assert.equal(event.id, "42");
    assert.equal(event.type, "sandbox.running");
    const fromFetch = await verifyWebhook(new TextEncoder().encode(body), new Headers(headers), secret, { now });
    assert.equal(fromFetch.sandboxId, "s1");
  });

  it("refuses another secret, a changed body, an old delivery and a missing header", async () => {
    const headers = { "Sbx-Timestamp": timestamp, "Sbx-Signature": signature };
    await assert.rejects(verifyWebhook(body, headers, "whsec_other", { now }), WebhookVerificationError);
    await assert.rejects(verifyWebhook(body + " ", headers, secret, { now }), WebhookVerificationError);
    await assert.rejects(verifyWebhook(body, headers, secret, { now: now + 301_000 }), WebhookVerificationError);
    await assert.rejects(verifyWebhook(body, { "Sbx-Timestamp": timestamp }, secret, { now }), WebhookVerificationError);
  });
});

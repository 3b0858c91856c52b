/**
 * Ports and previews through the SDK: `portFetch` to a sandbox's HTTP server (its own answers
 * as they are, the platform's refusals thrown), a WebSocket address, and a preview link that a
 * client with no credential follows.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { SandboxApiError } from "../src/index.js";
import { TEST_TIMEOUT_MS, apiError, createEnvironment, destroyQuietly, newUser } from "./helpers.js";

const SERVE = "mkdir -p /tmp/www && echo hello-ts > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("ports and previews", { timeout: TEST_TIMEOUT_MS }, () => {
  it("reaches a sandbox's port, and opens a preview link with no credential", async () => {
    const client = await newUser();
    const env = await createEnvironment(client, { command: ["sh", "-c", SERVE] });
    const sandbox = await client.createSandbox({ environmentId: env.id });
    try {
      const page = await eventually(async () => {
        const answer = await client.portFetch(sandbox.id, 8080, "/index.html");
        return answer.status === 200 ? answer.text() : undefined;
      });
      assert.equal(page, "hello-ts\n");
      const missing = await client.portFetch(sandbox.id, 8080, "/nope");
      assert.equal(missing.status, 404);

      const refused = await apiError(() => client.portFetch(sandbox.id, 8081, "/"));
      assert.ok(refused instanceof SandboxApiError);
      assert.equal(refused.code, "UPSTREAM_UNAVAILABLE");
      assert.equal(refused.status, 502);

      assert.match(client.portUrl(sandbox.id, 8080, "/a?b=1"), new RegExp(`/sandboxes/${sandbox.id}/ports/8080/a\\?b=1$`));
      assert.match(client.portSocketUrl(sandbox.id, 9000, "/live?x=1"), /^ws.*\/ports\/9000\/live\?x=1&token=/);

      const link = await client.getPreviewUrl(sandbox.id, 8080, { expiresInSeconds: 120 });
      assert.ok(link.url.includes("sbx_preview="));
      assert.ok(Date.parse(link.expiresAt) > Date.now());
      const first = await fetch(link.url, { redirect: "manual" });
      assert.equal(first.status, 303);
      const cookie = (first.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
      const location = new URL(first.headers.get("location") ?? "", link.url).toString();
      const opened = await fetch(location, { headers: { cookie } });
      assert.equal(await opened.text(), "hello-ts\n");

      const bad = await apiError(() => client.getPreviewUrl(sandbox.id, 8080, { expiresInSeconds: 10 }));
      assert.equal(bad.code, "VALIDATION_ERROR");
    } finally {
      await destroyQuietly(client, sandbox.id);
    }
  });
});

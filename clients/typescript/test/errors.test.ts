/**
 * The API's errors as `SandboxApiError`s (code, status, message, details), from HTTP answers
 * and from WebSocket close codes, against the real platform.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { describe, it } from "node:test";

import { SandboxApiError } from "../src/index.js";
import {
  PASSWORD,
  TEST_TIMEOUT_MS,
  apiError,
  createEnvironment,
  destroyQuietly,
  newClient,
  newUser,
  uniqueEmail,
} from "./helpers.js";

/** A local port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("errors", { timeout: TEST_TIMEOUT_MS }, () => {
  it("maps 404 NOT_FOUND", async () => {
    const client = await newUser();
    const error = await apiError(() => client.getSandbox(randomUUID()));
    assert.ok(error instanceof SandboxApiError);
    assert.equal(error.code, "NOT_FOUND");
    assert.equal(error.status, 404);
    assert.ok(error.message.length > 0);
    assert.ok(error.traceId);
    assert.equal((await apiError(() => client.getSandbox("not-a-uuid"))).code, "NOT_FOUND");
  });

  it("maps 400 VALIDATION_ERROR with the fields in details", async () => {
    const client = await newUser();
    const error = await apiError(() => client.createEnvironment({ name: "bad", image: "x", memory: 1 }));
    assert.equal(error.code, "VALIDATION_ERROR");
    assert.equal(error.status, 400);
    const errors = error.details?.errors as { path: string; message: string }[] | undefined;
    assert.ok(errors?.some((e) => e.path === "memory"), JSON.stringify(error.details));
  });

  it("maps 401 UNAUTHORIZED, on HTTP and on sockets", async () => {
    const anonymous = newClient();
    const missing = await apiError(() => anonymous.me());
    assert.equal(missing.code, "UNAUTHORIZED");
    assert.equal(missing.status, 401);
    const forged = newClient({ token: "not-a-token" });
    assert.equal((await apiError(() => forged.listSandboxes())).status, 401);
    const login = await apiError(() => newClient().login(uniqueEmail(), PASSWORD));
    assert.equal(login.code, "UNAUTHORIZED");

    const stream = forged.subscribeEvents();
    const closed = await apiError(() => stream.next());
    assert.equal(closed.code, "UNAUTHORIZED");
    assert.equal(closed.closeCode, 4001);
  });

  it("maps 409 CONFLICT, INVALID_STATE and NOT_RUNNING", async () => {
    const email = uniqueEmail();
    const client = newClient();
    await client.signup(email, PASSWORD);
    const duplicate = await apiError(() => newClient().signup(email.toUpperCase(), PASSWORD));
    assert.equal(duplicate.code, "CONFLICT");
    assert.equal(duplicate.status, 409);

    const env = await createEnvironment(client);
    const sandbox = await client.createSandbox({ environmentId: env.id });
    try {
      const inUse = await apiError(() => client.deleteEnvironment(env.id));
      assert.equal(inUse.code, "CONFLICT");

      await client.stopSandbox(sandbox.id);
      const notRunning = await apiError(() => client.exec(sandbox.id, "true"));
      assert.equal(notRunning.code, "NOT_RUNNING");
      assert.equal(notRunning.status, 409);
      assert.equal((await apiError(() => client.getMetrics(sandbox.id))).code, "NOT_RUNNING");
      const terminal = await apiError(() => client.openTerminal(sandbox.id));
      assert.equal(terminal.code, "NOT_RUNNING");
      assert.equal(terminal.closeCode, 4009);

      await client.destroySandbox(sandbox.id);
      const invalid = await apiError(() => client.startSandbox(sandbox.id));
      assert.equal(invalid.code, "INVALID_STATE");
      assert.equal(invalid.status, 409);
    } finally {
      await destroyQuietly(client, sandbox.id);
    }
  });

  it("maps sockets of unknown sandboxes to NOT_FOUND", async () => {
    const client = await newUser();
    const error = await apiError(() => client.streamLogs(randomUUID()).next());
    assert.equal(error.code, "NOT_FOUND");
    assert.equal(error.closeCode, 4004);
  });

  it("reports a platform that cannot be reached as NETWORK_ERROR", async () => {
    const client = newClient({ baseUrl: `http://127.0.0.1:${await closedPort()}`, retry: { maxAttempts: 2, initialDelayMs: 10 } });
    const error = await apiError(() => client.getSandbox(randomUUID()));
    assert.equal(error.code, "NETWORK_ERROR");
    assert.equal(error.status, 0);
  });
});

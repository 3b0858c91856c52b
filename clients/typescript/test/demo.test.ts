/**
 * The seed's demo flow through the SDK, against the real platform: account, API key, an
 * environment with a secret, a sandbox through its whole lifecycle, logs, exec, terminal,
 * metrics, replicate, destroy.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  PASSWORD,
  TEST_TIMEOUT_MS,
  apiError,
  createEnvironment,
  destroyQuietly,
  newClient,
  newUser,
  uniqueEmail,
  waitFor,
} from "./helpers.js";

describe("demo flow", { timeout: TEST_TIMEOUT_MS }, () => {
  it("signs up, logs in and works with an API key", async () => {
    const email = uniqueEmail();
    const client = newClient();
    const signedUp = await client.signup(email, PASSWORD);
    assert.equal(signedUp.user.email, email);
    assert.equal(client.token, signedUp.token);

    const loggedIn = newClient();
    const login = await loggedIn.login(email, PASSWORD);
    assert.equal(login.user.id, signedUp.user.id);
    assert.equal((await loggedIn.me()).email, email);

    const created = await client.createApiKey("ts sdk");
    assert.match(created.key, /^sk_/);
    const withKey = newClient({ apiKey: created.key });
    assert.equal((await withKey.me()).id, signedUp.user.id);
    const keys = await withKey.listApiKeys();
    assert.deepEqual(
      keys.map((k) => k.id),
      [created.id],
    );
    assert.equal("key" in (keys[0] ?? {}), false);

    await client.revokeApiKey(created.id);
    const refused = await apiError(() => withKey.me());
    assert.equal(refused.code, "UNAUTHORIZED");
    assert.equal(refused.status, 401);
  });

  it("changes the password, logs out and makes expiring keys", async () => {
    const email = uniqueEmail();
    const client = newClient();
    const first = await client.signup(email, PASSWORD);
    const expiring = await client.createApiKey("expiring", { expiresInDays: 7 });
    assert.notEqual(expiring.expiresAt, null);
    assert.equal((await client.createApiKey("forever")).expiresAt, null);
    const bad = await apiError(() => client.createApiKey("bad", { expiresInDays: 0 }));
    assert.equal(bad.code, "VALIDATION_ERROR");

    const changed = await client.changePassword(PASSWORD, "another passphrase");
    assert.equal(client.token, changed.token);
    assert.equal((await client.me()).email, email);
    const old = newClient({ token: first.token });
    assert.equal((await apiError(() => old.me())).status, 401);

    await client.logout();
    assert.equal((await apiError(() => client.me())).status, 401);
  });

  it("manages environments, versions and secrets", async () => {
    const client = await newUser();
    const env = await createEnvironment(client, { env: { MODE: "one" } });
    assert.equal(env.version, 1);
    assert.deepEqual((await client.listEnvironments()).map((e) => e.id), [env.id]);
    assert.equal((await client.getEnvironment(env.id)).name, env.name);

    const secret = await client.setSecret(env.id, "API_TOKEN", "s3cret");
    assert.equal(secret.key, "API_TOKEN");
    assert.deepEqual((await client.getEnvironment(env.id)).secrets.map((s) => s.key), ["API_TOKEN"]);

    const updated = await client.updateEnvironment(env.id, { env: { MODE: "two" }, memory: 96 });
    assert.equal(updated.version, 2);
    assert.equal(updated.memory, 96);
    const versions = await client.listEnvironmentVersions(env.id);
    assert.deepEqual(versions.map((v) => [v.version, v.env.MODE]), [
      [1, "one"],
      [2, "two"],
    ]);

    assert.equal((await client.deleteSecret(env.id, "API_TOKEN")).deleted, true);
    assert.equal((await client.deleteEnvironment(env.id)).deleted, true);
    assert.equal((await apiError(() => client.getEnvironment(env.id))).code, "NOT_FOUND");
  });

  it("runs a sandbox through its lifecycle", async () => {
    const client = await newUser();
    const env = await createEnvironment(client, {
      env: { GREETING: "hello" },
      command: ["sh", "-c", "echo started-$GREETING; while true; do sleep 3600; done"],
    });
    await client.setSecret(env.id, "API_TOKEN", "s3cret");
    const ids: string[] = [];
    try {
      const sandbox = await client.createSandbox(
        { environmentId: env.id, name: "demo", ttlSeconds: 600, metadata: { suite: "ts-sdk" } },
        { wait: true, timeout: 120 },
      );
      ids.push(sandbox.id);
      assert.equal(sandbox.status, "running");
      assert.equal(sandbox.name, "demo");
      assert.equal((await client.getSandbox(sandbox.id)).status, "running");

      const result = await client.exec(sandbox.id, 'echo "$GREETING $API_TOKEN"; echo oops >&2; exit 3');
      assert.equal(result.exitCode, 3);
      assert.equal(result.stdout, "hello s3cret\n");
      assert.equal(result.stderr, "oops\n");
      assert.equal(result.timedOut, false);
      assert.equal(typeof result.durationMs, "number");
      const listed = await client.exec(sandbox.id, ["echo", "as", "a list"]);
      assert.equal(listed.stdout, "as a list\n");

      const logs = await waitFor("the command's first log line", async () => {
        const lines = await client.getLogs(sandbox.id, { tail: 10 });
        return lines.some((l) => l.text === "started-hello") ? lines : undefined;
      });
      assert.equal(logs[0]?.seq, 1);
      assert.equal(logs[0].stream, "stdout");

      const metrics = await waitFor("a metrics sample", () => client.getMetrics(sandbox.id));
      assert.equal(typeof metrics.cpu.usagePercent, "number");
      assert.ok(metrics.memory.limitBytes > 0);

      const stopped = await client.stopSandbox(sandbox.id);
      assert.equal(stopped.status, "stopped");
      const started = await client.startSandbox(sandbox.id);
      assert.equal(started.status, "running");
      const restarted = await client.restartSandbox(sandbox.id);
      assert.equal(restarted.status, "running");
      const paused = await client.pauseSandbox(sandbox.id);
      assert.equal(paused.status, "paused");
      const resumed = await client.resumeSandbox(sandbox.id);
      assert.equal(resumed.status, "running");
      const updated = await client.updateSandbox(sandbox.id, { ttlSeconds: 7200, onExpire: "stop" });
      assert.equal(updated.onExpire, "stop");
      assert.ok(Date.parse(updated.expiresAt ?? "") > Date.now() + 7000 * 1000);

      const replica = await client.replicateSandbox(sandbox.id, { name: "copy", env: { GREETING: "hi" } });
      ids.push(replica.id);
      assert.equal(replica.status, "running");
      assert.equal(replica.environmentVersion, sandbox.environmentVersion);
      assert.equal((await client.exec(replica.id, "echo $GREETING")).stdout, "hi\n");

      const all = await client.listSandboxes();
      assert.deepEqual(new Set(all.map((s) => s.id)), new Set(ids));
      const tagged = await client.listSandboxes({ metadata: { suite: "ts-sdk" } });
      assert.deepEqual(tagged.map((s) => s.id), [sandbox.id]);
      const page = await client.listSandboxesPage({ limit: 1 });
      assert.equal(page.data.length, 1);
      assert.notEqual(page.nextCursor, null);

      const destroyed = await client.destroySandbox(replica.id);
      assert.equal(destroyed.status, "destroyed");
      assert.equal((await client.getSandbox(replica.id)).status, "destroyed");
      assert.deepEqual((await client.listSandboxes()).map((s) => s.id), [sandbox.id]);
      assert.deepEqual((await client.listSandboxes({ status: "destroyed" })).map((s) => s.id), [replica.id]);
    } finally {
      await destroyQuietly(client, ...ids);
    }
  });

  it("opens a terminal that runs what is typed", async () => {
    const client = await newUser();
    const env = await createEnvironment(client);
    const sandbox = await client.createSandbox({ environmentId: env.id });
    try {
      const terminal = await client.openTerminal(sandbox.id, { cols: 100, rows: 30 });
      let output = "";
      const decoder = new TextDecoder();
      terminal.onData((chunk) => {
        output += decoder.decode(chunk, { stream: true });
      });
      await terminal.ping();
      terminal.resize(120, 40);
      terminal.write("echo hi\n");
      await waitFor(
        "the shell to print hi",
        () => Promise.resolve(output.split(/\r?\n/).some((line) => line.trim() === "hi") ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 50 },
      );
      terminal.write("stty size\n");
      await waitFor(
        "the resized PTY",
        () => Promise.resolve(output.includes("40 120") ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 50 },
      );
      terminal.write("exit\n");
      const exit = await terminal.closed;
      assert.equal(exit.code, 1000);
      assert.equal(terminal.ended, true);
    } finally {
      await destroyQuietly(client, sandbox.id);
    }
  });

  it("tells what the installation offers", async () => {
    const info = await newClient().getInfo();
    assert.equal(info.runtimes[0], "runc");
    assert.equal(info.limits.defaultDiskMib, 2048);
    const client = await newUser();
    const env = await createEnvironment(client, { disk: 256 });
    assert.equal(env.disk, 256);
    assert.equal(env.runtime, "runc");
    const updated = await client.updateEnvironment(env.id, { runtime: info.runtimes[info.runtimes.length - 1] });
    assert.equal(updated.version, 2);
    assert.equal(updated.disk, 256);
  });

  it("answers health", async () => {
    const health = await newClient().health();
    assert.equal(health.status, "ok");
    assert.equal(health.db, "ok");
  });
});

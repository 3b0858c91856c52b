/**
 * Live streams against the real platform: logs and events survive a connection cut like a
 * network would (the socket is terminated under the SDK) without losing or repeating anything.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { LogLine, SandboxEvent } from "../src/index.js";
import { TEST_TIMEOUT_MS, createEnvironment, destroyQuietly, newUser, nextWithin, trackedWebSocket } from "./helpers.js";

const LINES = 300;

describe("streams", { timeout: TEST_TIMEOUT_MS }, () => {
  it("streamLogs resumes after dropped connections without a lost or repeated line", async () => {
    const tracked = trackedWebSocket();
    const client = await newUser({ WebSocket: tracked.WebSocket });
    const env = await createEnvironment(client, {
      command: [
        "sh",
        "-c",
        `i=0; while [ $i -lt ${LINES} ]; do i=$((i+1)); echo line-$i; sleep 0.02; done; while true; do sleep 3600; done`,
      ],
    });
    const sandbox = await client.createSandbox({ environmentId: env.id });
    try {
      const stream = client.streamLogs(sandbox.id, { since: 0 });
      const lines: LogLine[] = [];
      const dropAt = new Set([40, 150]);
      while (lines.length < LINES) {
        const line = await nextWithin(stream, `log line ${lines.length + 1}`);
        lines.push(line);
        if (dropAt.has(lines.length)) tracked.sockets.at(-1)?.terminate();
      }
      assert.equal(stream.lastSeq, LINES);
      stream.close();
      assert.ok(stream.connectionCount >= 3, `expected reconnections, saw ${stream.connectionCount} connections`);
      assert.deepEqual(
        lines.map((l) => l.seq),
        Array.from({ length: LINES }, (_, i) => i + 1),
      );
      assert.deepEqual(
        lines.map((l) => l.text),
        Array.from({ length: LINES }, (_, i) => `line-${i + 1}`),
      );
      assert.ok(lines.every((l) => l.stream === "stdout"));
    } finally {
      await destroyQuietly(client, sandbox.id);
    }
  });

  it("streamLogs ends with the sandbox's last status once it is destroyed", async () => {
    const client = await newUser();
    const env = await createEnvironment(client, { command: ["sh", "-c", "echo only-line; while true; do sleep 3600; done"] });
    const sandbox = await client.createSandbox({ environmentId: env.id });
    const statuses: string[] = [];
    const stream = client.streamLogs(sandbox.id, { tail: 10, onStatus: (s) => statuses.push(s) });
    try {
      const first = await nextWithin(stream, "the first line");
      assert.equal(first.text, "only-line");
      await client.destroySandbox(sandbox.id);
      const rest: LogLine[] = [];
      for await (const line of stream) rest.push(line);
      assert.deepEqual(rest, []);
      assert.equal(statuses.at(-1), "destroyed");
    } finally {
      stream.close();
      await destroyQuietly(client, sandbox.id);
    }
  });

  it("subscribeEvents sees sandbox.running and resumes after a drop from the last event id", async () => {
    const tracked = trackedWebSocket();
    const client = await newUser({ WebSocket: tracked.WebSocket });
    const env = await createEnvironment(client);
    const sandbox = await client.createSandbox({ environmentId: env.id });
    // A new user's whole history is this test's: `since: "0"` replays it, so nothing depends
    // on the subscription being in place before the events happen.
    const stream = client.subscribeEvents({ since: "0" });
    const seen: SandboxEvent[] = [];
    const until = async (type: string): Promise<void> => {
      for (;;) {
        const event = await nextWithin(stream, type);
        seen.push(event);
        if (event.sandboxId === sandbox.id && event.type === type) return;
      }
    };
    try {
      await until("sandbox.running");
      const running = seen.at(-1);
      assert.equal(running?.status, "running");
      assert.equal(running.sandboxId, sandbox.id);

      tracked.sockets.at(-1)?.terminate();
      await client.stopSandbox(sandbox.id);
      await until("sandbox.stopped");
      await client.startSandbox(sandbox.id);
      await until("sandbox.running");
      assert.ok(stream.connectionCount >= 2);

      const ids = seen.map((e) => BigInt(e.id));
      assert.deepEqual(ids, [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      assert.equal(new Set(ids).size, ids.length, "an event was repeated");
      const firstRunning = seen.findIndex((e) => e.type === "sandbox.running");
      const watched = new Set(["sandbox.stopping", "sandbox.stopped", "sandbox.running"]);
      assert.deepEqual(
        seen.slice(firstRunning + 1).map((e) => e.type).filter((t) => watched.has(t)),
        ["sandbox.stopping", "sandbox.stopped", "sandbox.running"],
      );
      assert.equal(stream.lastEventId, seen.at(-1)?.id);
    } finally {
      stream.close();
      await destroyQuietly(client, sandbox.id);
    }
  });

  it("sandboxEvents replays a sandbox's history over server-sent events", async () => {
    const client = await newUser();
    const env = await createEnvironment(client);
    const sandbox = await client.createSandbox({ environmentId: env.id });
    const stream = client.sandboxEvents(sandbox.id);
    try {
      const types: string[] = [];
      while (!types.includes("sandbox.running")) types.push((await nextWithin(stream, "sandbox.running")).type);
      const resumeFrom = stream.lastEventId;
      assert.notEqual(resumeFrom, undefined);
      await stream.return();

      await client.stopSandbox(sandbox.id);
      const resumed = client.sandboxEvents(sandbox.id, { lastEventId: resumeFrom });
      try {
        const next = await nextWithin(resumed, "sandbox.stopping");
        assert.equal(next.type, "sandbox.stopping");
      } finally {
        resumed.close();
      }
    } finally {
      stream.close();
      await destroyQuietly(client, sandbox.id);
    }
  });
});

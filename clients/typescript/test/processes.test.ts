/**
 * Background processes through the SDK: started, fed on stdin, read back by seq, reattached on
 * the socket from a seq, signalled.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { ProcessInfo } from "../src/index.js";
import { TEST_TIMEOUT_MS, createEnvironment, destroyQuietly, newUser } from "./helpers.js";

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail("condition not met in 30 s");
}

describe("processes", { timeout: TEST_TIMEOUT_MS }, () => {
  it("starts, feeds, reads, reattaches and signals processes", async () => {
    const client = await newUser();
    const env = await createEnvironment(client, { command: ["sh", "-c", "exec sleep 3600"] });
    const sandbox = await client.createSandbox({ environmentId: env.id });
    try {
      const reader = await client.createProcess(sandbox.id, { command: "read a; echo got-$a; echo two", stdin: true });
      assert.equal(reader.status, "running");
      assert.deepEqual(await client.sendProcessStdin(sandbox.id, reader.id, "x\n", { eof: true }), { written: 2 });
      let ended: ProcessInfo = reader;
      await until(async () => {
        ended = await client.getProcess(sandbox.id, reader.id);
        return ended.status !== "running";
      });
      assert.equal(ended.exitCode, 0);
      const page = await client.getProcessOutput(sandbox.id, reader.id, { since: 0 });
      assert.equal(page.data.map((chunk) => chunk.text).join(""), "got-x\ntwo\n");
      assert.equal(page.nextSince, page.data.at(-1)?.seq);
      assert.equal(page.truncatedBefore, null);

      // Reattached from the first chunk: the rest, then the exit.
      const attachment = client.attachProcess(sandbox.id, reader.id, { since: page.data[0]?.seq ?? 0 });
      const frames = [];
      for await (const frame of attachment) frames.push(frame);
      assert.equal(frames.at(-1)?.type, "exit");
      assert.equal(frames.length, page.data.length);

      const sleeper = await client.createProcess(sandbox.id, { command: ["sleep", "60"] });
      await client.signalProcess(sandbox.id, sleeper.id, "KILL");
      await until(async () => (await client.getProcess(sandbox.id, sleeper.id)).status !== "running");
      assert.equal((await client.getProcess(sandbox.id, sleeper.id)).signal, "KILL");
      const listed = await client.listProcesses(sandbox.id, { status: "exited" });
      assert.ok(listed.some((process) => process.id === sleeper.id));
    } finally {
      await destroyQuietly(client, sandbox.id);
    }
  });
});

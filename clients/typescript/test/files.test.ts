/**
 * Files through the SDK: write (string, bytes, a stream), read (whole and a range), list, stat,
 * mkdir, move, delete, a tar out and back in, and the contract's codes for wrong kinds of path.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { TEST_TIMEOUT_MS, apiError, createEnvironment, destroyQuietly, newUser } from "./helpers.js";

describe("files", { timeout: TEST_TIMEOUT_MS }, () => {
  it("writes, reads, lists and moves files, and archives", async () => {
    const client = await newUser();
    const env = await createEnvironment(client, { command: ["sh", "-c", "exec sleep 3600"] });
    const sandbox = await client.createSandbox({ environmentId: env.id });
    try {
      const written = await client.writeFile(sandbox.id, "/ts/a.txt", "hello files", { mode: 0o640 });
      assert.deepEqual(written, { path: "/ts/a.txt", size: 11 });
      assert.equal(new TextDecoder().decode(await client.readFile(sandbox.id, "/ts/a.txt")), "hello files");
      const part = await client.readFile(sandbox.id, "/ts/a.txt", { offset: 6, length: 5 });
      assert.equal(new TextDecoder().decode(part), "files");
      assert.equal((await client.statFile(sandbox.id, "/ts/a.txt")).mode, "0640");
      const parts = [new Uint8Array(1000).fill(1), new Uint8Array(500).fill(2)];
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = parts.shift();
          if (next === undefined) controller.close();
          else controller.enqueue(next);
        },
      });
      assert.equal((await client.writeFile(sandbox.id, "/ts/s.bin", stream)).size, 1500);
      assert.equal((await client.makeDirectory(sandbox.id, "/ts/d/e", { parents: true })).type, "dir");
      assert.deepEqual(
        (await client.listFiles(sandbox.id, "/ts")).map((e) => e.name),
        ["a.txt", "d", "s.bin"],
      );
      assert.equal((await client.moveFile(sandbox.id, "/ts/a.txt", "/ts/d/a.txt")).path, "/ts/d/a.txt");
      assert.equal((await apiError(() => client.listFiles(sandbox.id, "/ts/s.bin"))).code, "NOT_A_DIRECTORY");
      assert.equal((await apiError(() => client.readFile(sandbox.id, "/ts/d"))).code, "IS_A_DIRECTORY");
      const tar = await client.downloadArchive(sandbox.id, "/ts/d");
      const extracted = await client.uploadArchive(sandbox.id, "/copy", tar);
      assert.equal(extracted.path, "/copy");
      assert.ok(extracted.entries >= 3);
      assert.equal(new TextDecoder().decode(await client.readFile(sandbox.id, "/copy/d/a.txt")), "hello files");
      await client.deleteFile(sandbox.id, "/ts", { recursive: true });
      assert.equal((await apiError(() => client.statFile(sandbox.id, "/ts"))).code, "NOT_FOUND");
    } finally {
      await destroyQuietly(client, sandbox.id);
    }
  });
});

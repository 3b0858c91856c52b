/**
 * Snapshots and volumes through the SDK: a volume mounted into a sandbox, a snapshot of it, a
 * sandbox made from the snapshot, a replicate with `withFilesystem`, and deletes refused while
 * in use.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { TEST_TIMEOUT_MS, apiError, createEnvironment, destroyQuietly, newUser } from "./helpers.js";

describe("snapshots and volumes", { timeout: TEST_TIMEOUT_MS }, () => {
  it("keeps files in snapshots and volumes", async () => {
    const client = await newUser();
    const env = await createEnvironment(client, { command: ["sh", "-c", "exec sleep 3600"] });
    const volume = await client.createVolume({ name: "ts-data", sizeMiB: 16 });
    assert.equal(volume.sizeMiB, 16);
    const made: string[] = [];
    try {
      const source = await client.createSandbox({
        environmentId: env.id,
        volumes: [{ volumeId: volume.id, mountPath: "/data" }],
      });
      made.push(source.id);
      await client.exec(source.id, "echo disk > /f && echo vol > /data/f");
      assert.deepEqual((await client.getVolume(volume.id)).attachedTo, [source.id]);

      let snapshot = await client.createSnapshot(source.id, "ts-snap");
      assert.equal(snapshot.status, "creating");
      for (let i = 0; i < 600 && snapshot.status === "creating"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        snapshot = await client.getSnapshot(snapshot.id);
      }
      assert.equal(snapshot.status, "ready");
      assert.deepEqual(
        (await client.listSnapshots({ sandboxId: source.id })).map((s) => s.id),
        [snapshot.id],
      );
      const waited = await client.createSnapshot(source.id, "ts-waited", { wait: true, timeout: 60 });
      assert.equal(waited.status, "ready");
      assert.ok(waited.sizeBytes > 0);
      await client.deleteSnapshot(waited.id);

      const copy = await client.createSandbox({ snapshotId: snapshot.id });
      made.push(copy.id);
      assert.equal((await client.exec(copy.id, "cat /f")).stdout, "disk\n");
      const fork = await client.replicateSandbox(source.id, { withFilesystem: true });
      made.push(fork.id);
      assert.equal((await client.exec(fork.id, "cat /f")).stdout, "disk\n");

      assert.equal((await apiError(() => client.deleteVolume(volume.id))).code, "CONFLICT");
      assert.equal((await apiError(() => client.deleteSnapshot(snapshot.id))).code, "CONFLICT");
      for (const id of made.splice(0)) await client.destroySandbox(id);
      await client.deleteSnapshot(snapshot.id);
      await client.deleteVolume(volume.id);
      assert.deepEqual(await client.listVolumes(), []);
      assert.deepEqual(await client.listSnapshots(), []);
    } finally {
      for (const id of made) await destroyQuietly(client, id);
    }
  });
});

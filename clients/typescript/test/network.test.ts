/**
 * Network policies through the SDK: an environment's `network`, and a live change of a sandbox's
 * policy with `updateSandboxNetwork` (bad input refused with the field named).
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { TEST_TIMEOUT_MS, apiError, createEnvironment, destroyQuietly, newUser } from "./helpers.js";

describe("network policies", { timeout: TEST_TIMEOUT_MS }, () => {
  it("sets an environment's policy and changes a sandbox's", async () => {
    const client = await newUser();
    const env = await createEnvironment(client, { network: { egress: "none" } });
    assert.deepEqual(env.network, { egress: "none", allow: [] });
    const sandbox = await client.createSandbox({ environmentId: env.id }, { wait: false });
    try {
      assert.equal(sandbox.network.egress, "none");
      const changed = await client.updateSandboxNetwork(sandbox.id, {
        egress: "allowlist",
        allow: ["203.0.113.0/24", "localhost"],
      });
      assert.deepEqual(changed.network, { egress: "allowlist", allow: ["203.0.113.0/24", "localhost"] });
      assert.equal((await client.getSandbox(sandbox.id)).network.egress, "allowlist");

      const refused = await apiError(() =>
        client.updateSandboxNetwork(sandbox.id, { egress: "allowlist", allow: ["300.0.0.1"] }),
      );
      assert.equal(refused.code, "VALIDATION_ERROR");
      assert.equal(refused.status, 400);
    } finally {
      await destroyQuietly(client, sandbox.id);
    }
  });
});

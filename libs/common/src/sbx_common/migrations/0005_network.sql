-- Network policy of sandboxes: {"egress": "internet" | "none" | "allowlist", "allow": [...]}.
-- Written by: api (environment_versions never change once inserted; sandboxes.network is the
-- sandbox's current policy, changed by PATCH /sandboxes/:id/network and applied by the
-- orchestrator).
ALTER TABLE environment_versions
    ADD COLUMN network jsonb NOT NULL DEFAULT '{"egress": "internet", "allow": []}'::jsonb;
ALTER TABLE sandboxes
    ADD COLUMN network jsonb NOT NULL DEFAULT '{"egress": "internet", "allow": []}'::jsonb;

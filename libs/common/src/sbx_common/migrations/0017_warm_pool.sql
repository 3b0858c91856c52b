-- Written by: api. How many ready sandboxes of each environment version the orchestrator keeps
-- waiting for the owner's creates (versions stay immutable: older rows get 0, no pool).
ALTER TABLE environment_versions
    ADD COLUMN warm_pool integer NOT NULL DEFAULT 0 CHECK (warm_pool BETWEEN 0 AND 20);

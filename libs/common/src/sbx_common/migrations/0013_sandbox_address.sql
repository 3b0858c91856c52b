-- Written by: orchestrator. The sandbox container's IPv4 address on the platform's sandbox
-- bridge while it runs (or is paused); NULL otherwise. The API's port proxy connects to this
-- address and to nothing else (docs/previews.md).
ALTER TABLE sandbox_runtime ADD COLUMN address inet;

-- Written by: api. The container runtime and the writable-disk limit of each environment version
-- (versions stay immutable: rows older than this migration get the defaults).
ALTER TABLE environment_versions
    ADD COLUMN runtime  text NOT NULL DEFAULT 'runc',
    ADD COLUMN disk_mib integer NOT NULL DEFAULT 2048;

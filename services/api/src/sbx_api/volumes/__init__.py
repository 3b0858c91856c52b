"""Volumes: named, size-limited, per-user storage that outlives sandboxes."""

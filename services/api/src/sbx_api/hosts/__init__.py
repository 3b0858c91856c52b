"""Docker hosts: where a sandbox is placed, and where its requests go (docs/scale-out.md)."""

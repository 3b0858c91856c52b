"""Snapshots: a sandbox's filesystem kept as an image of the platform."""

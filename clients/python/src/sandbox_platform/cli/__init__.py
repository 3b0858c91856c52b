"""The `sbx` command line: a console script of the `sandbox-platform` distribution."""

from sandbox_platform.cli.app import app, main

__all__ = ["app", "main"]

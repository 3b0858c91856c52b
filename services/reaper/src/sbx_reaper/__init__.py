"""The reaper service of the sandbox platform."""

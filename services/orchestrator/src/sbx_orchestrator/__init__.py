"""The orchestrator service of the sandbox platform."""

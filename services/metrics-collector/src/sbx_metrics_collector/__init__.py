"""The metrics-collector service of the sandbox platform."""

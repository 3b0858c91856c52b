"""The Docker side of the orchestrator: the engine's calls, what a sandbox's container looks like,
the engine's event stream, and running commands inside a container."""

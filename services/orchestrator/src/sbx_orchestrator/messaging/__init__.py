"""The NATS side of the orchestrator: the commands it consumes, the events and dead letters it
publishes, and the exec, terminal and health requests it answers."""

"""Development stack: embedded NATS and PostgreSQL, and the `make run` process supervisor."""

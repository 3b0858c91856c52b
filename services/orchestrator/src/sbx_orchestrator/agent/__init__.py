"""The in-sandbox agent's orchestrator side: putting the binary into every sandbox (`binary`),
its frames (`protocol`), one persistent session per running sandbox (`session`, `pool`).
See docs/agent.md."""

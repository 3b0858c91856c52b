"""Background processes in a sandbox (the "Processes" part of the contract): started and driven
through the orchestrator (`sbx.rpc.process`), read from the tables it writes."""

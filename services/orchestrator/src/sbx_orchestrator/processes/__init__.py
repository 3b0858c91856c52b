"""Background processes: started through the in-sandbox agent, their output stored (the
orchestrator is the only writer of `sandbox_processes` and `sandbox_process_output`) and
published live on `sbx.proc.<sandboxId>.<processId>`. See docs/processes.md."""

"""The local runner: executes the pipeline's one orchestration on this machine."""

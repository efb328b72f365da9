"""The paper's architectures and tasks (filled in by the tasks issue)."""

"""Training tasks, one module per family; each registers a factory with register_task."""

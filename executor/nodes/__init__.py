"""Node types: one module each, registered in `executor.registry`."""

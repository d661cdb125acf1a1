"""The gateway's state: per-model limits, faults, the catalog, the transcript store, the log."""

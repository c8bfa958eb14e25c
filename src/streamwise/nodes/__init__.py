"""Node implementations, one per module, registered by their Flowise names in `registry`."""

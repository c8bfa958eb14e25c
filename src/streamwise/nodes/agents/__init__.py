"""Agent nodes: chat models that call tools while they answer."""

"""HTTP routes, one module per resource. The only layer that knows FastAPI."""

"""The flow engine: graphs, runs and the typed events they emit.

Nothing in this package knows about HTTP, SSE framing, Redis or SQL; the edges adapt to it.
"""

"""Tool nodes: what an agent may call (engine/tools.py has the protocols)."""

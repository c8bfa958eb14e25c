"""Streamwise: a streaming-first LLM flow server that speaks Flowise's prediction protocol."""

__version__ = "0.1.0"

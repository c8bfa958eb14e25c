"""Embeddings nodes: text → vectors, remote (OpenAI-compatible, Ollama) or embedded in the process."""

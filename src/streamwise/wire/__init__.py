"""Flowise's wire format: SSE frames, request parsing, error bodies. Golden-tested bytes live here."""

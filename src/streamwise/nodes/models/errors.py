"""Failures of a remote chat model, worded for the person reading the chat.

ModelError          the server answered an error status, broke off, sent garbage, or was unreachable
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_KEYLIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}")


class ModelError(Exception):
    """A chat model request failed. `str(error)` is short and safe to show: no keys, no stack."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the upstream HTTP status, when there was one


def tidy(text: str, secrets: Iterable[str] = (), limit: int = 300) -> str:
    """One line, bounded, with API keys masked: upstream messages may echo what we sent."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _KEYLIKE.sub(r"\1-***", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"

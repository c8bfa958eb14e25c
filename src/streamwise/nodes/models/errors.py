"""Failures of a remote chat model, worded for the person reading the chat.

The message names the node and says what went wrong in general terms; it never holds the model
server's address or its body text, which may carry internal names, keys or prompts. Those go into
`detail`, which only the server log shows (with the run id).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from streamwise.errors import ModelError, ModelRateLimited, ModelRefused, ModelTimeout, ModelUnavailable

_KEYLIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}")

__all__ = ["ModelError", "ModelFailures", "tidy"]


def tidy(text: str, secrets: Iterable[str] = (), limit: int = 300) -> str:
    """One line, bounded, with API keys masked: upstream messages may echo what we sent."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _KEYLIKE.sub(r"\1-***", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ModelFailures:
    """Makes the errors of one model node: public messages name the node, details name the server."""

    def __init__(self, node_id: str, label: str, where: str, secrets: Iterable[str] = ()) -> None:
        self.who = f"Node {node_id} ({label})"
        self.where = where  # e.g. "OpenAI-compatible server at http://10.0.0.5:8000/v1": log only
        self.secrets = tuple(secrets)

    def _detail(self, text: str) -> str:
        return f"{self.where}: {tidy(text, self.secrets)}"

    def status(self, code: int, body_text: str = "", retry_after: str | None = None) -> ModelError:
        detail = self._detail(f"answered HTTP {code}: {body_text or 'no details'}")
        if code == 429:
            wait = f"; try again in {retry_after} s" if retry_after and retry_after.isdigit() else ""
            return ModelRateLimited(
                f"{self.who}: the model server is rate limiting requests (HTTP 429){wait}",
                detail=detail,
                status=code,
                retry_after=retry_after,
            )
        if code in (401, 403):
            message = f"{self.who}: the model server refused the credentials (HTTP {code})"
        elif code == 404:
            message = f"{self.who}: the model server does not know this model or endpoint (HTTP 404)"
        elif 400 <= code < 500:
            message = f"{self.who}: the model server refused the request (HTTP {code})"
        else:
            return ModelUnavailable(
                f"{self.who}: the model server failed (HTTP {code})", detail=detail, status=code
            )
        return ModelRefused(message, detail=detail, status=code)

    def unreachable(self, cause: str) -> ModelError:
        return ModelUnavailable(f"{self.who}: could not reach the model server", detail=self._detail(cause))

    def first_byte_timeout(self, seconds: float) -> ModelError:
        return ModelTimeout(
            f"{self.who}: the model server did not answer within {seconds:g} s",
            detail=self._detail(f"no response within {seconds:g} s"),
        )

    def silence_timeout(self, seconds: float) -> ModelError:
        return ModelTimeout(
            f"{self.who}: the model server went silent for more than {seconds:g} s mid-answer",
            detail=self._detail(f"no data for {seconds:g} s"),
        )

    def broke_off(self, cause: str) -> ModelError:
        return ModelUnavailable(
            f"{self.who}: the model server broke off the answer", detail=self._detail(cause)
        )

    def malformed(self, what: str) -> ModelError:
        return ModelUnavailable(
            f"{self.who}: the model server sent something that is not an answer", detail=self._detail(what)
        )

    def failed_mid_answer(self, body_text: str) -> ModelError:
        return ModelUnavailable(
            f"{self.who}: the model server reported an error mid-answer",
            detail=self._detail(f"in-stream error: {body_text}"),
        )

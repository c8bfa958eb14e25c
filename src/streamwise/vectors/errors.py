"""Failures of vector stores, worded for the person reading the chat.

A refusal (wrong dimension, another model's store, a damaged index) is the user's to fix: a
`BadRequest` naming the node. A store server that is down or slow is a `ModelUnavailable` /
`ModelTimeout` (502 / 504 at the edge), like a model server: the message names the node, never the
server's address or what it answered, which go to `detail` for the server log.
"""

from __future__ import annotations

from streamwise.errors import BadRequest, ModelTimeout, ModelUnavailable


class StoreRefusal(BadRequest):
    """The store cannot take or answer this as given (dimensions, embeddings, a damaged index)."""


class StoreUnavailable(ModelUnavailable):
    """A vector store server could not be reached, broke off, or answered an error."""


class StoreTimeout(ModelTimeout):
    """A vector store server did not answer within the deadline."""


class StoreFailures:
    """Makes the errors of one remote store: public messages name the node, details name the server."""

    def __init__(self, who: str, service: str, where: str) -> None:
        self.who = who  # "Node chroma_0 (Chroma)"
        self.service = service  # "Chroma server"
        self.where = where  # "Chroma server at http://10.0.0.5:8000": log only

    def unreachable(self, cause: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"{self.who}: could not reach the {self.service}", detail=f"{self.where}: {cause}"
        )

    def failed(self, cause: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"{self.who}: the {self.service} answered an error", detail=f"{self.where}: {cause}"
        )

    def timeout(self, seconds: float) -> StoreTimeout:
        return StoreTimeout(
            f"{self.who}: the {self.service} did not answer within {seconds:g} s",
            detail=f"{self.where}: no answer within {seconds:g} s",
        )

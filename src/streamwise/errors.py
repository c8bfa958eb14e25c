"""Every failure Streamwise reports on purpose, as one exception tree.

    StreamwiseError            str(error) is safe to show a client: no address, path, key or trace
    ├── BadRequest             the request cannot be used as sent; the message names the field
    │   ├── BodyTooLarge       over STREAMWISE_MAX_BODY_BYTES
    │   ├── BodyTimeout        the body did not arrive within STREAMWISE_BODY_TIMEOUT_SECONDS
    │   ├── LengthRequired     a multipart body without Content-Length
    │   ├── LimitExceeded      over a documented limit (nodes, edges, history turns, message size)
    │   └── StoreRefusal       a vector store cannot take this: dimension, other embeddings (vectors)
    ├── Unauthorized           no API key, or not one that opens this route or chatflow
    ├── Forbidden              a site (Origin) or host name the server does not answer
    ├── RateLimited            over a rate or concurrent-stream limit; `retry_after` in seconds
    ├── NotFound               no such chatflow (or other record)
    │   └── Gone               a run's events from that point are no longer kept
    ├── Conflict               a record with that id already exists
    ├── FlowError              the chatflow cannot run as defined; `node_id` names the culprit
    │   ├── GraphError         flowData malformed: shape, unknown node, dangling reference, cycle
    │   └── NodeConfigError    a node's inputs are unusable (missing model, wrong type, bad number)
    ├── ModelError             a model failed while answering; names the node, never the server
    │   ├── ModelUnavailable   unreachable, broke off, or sent something that is not an answer
    │   │   ├── StoreUnavailable   the same from a vector store server (vectors.errors)
    │   │   └── LocalModelError    the embedded runtime failed (nodes.models.local_runtime)
    │   ├── ModelRefused       answered an error status
    │   │   └── LocalModelRefused  the embedded runtime refused the request
    │   ├── ModelRateLimited   answered 429; `retry_after` passes its Retry-After on
    │   └── ModelTimeout       no first byte, or silence between chunks, past the deadline
    │       └── StoreTimeout       the same from a vector store server
    ├── StorageError           the database failed; details are logged, not shown
    ├── ShuttingDown           the server is draining and takes no new runs
    ├── Unavailable            a service it needs (Redis, in scale-out mode) did not answer
    └── InternalError          anything unexpected, reported with the run id to look up in the log

`detail` holds what only the server log may see (upstream URL, body text, paths). The HTTP status for
each class lives in one table at the edge (`streamwise.api.errors`); nothing here knows HTTP.
"""

from __future__ import annotations


class StreamwiseError(Exception):
    """Base of the tree. `message` is for the client; `detail` is for the server log only."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class BadRequest(StreamwiseError):
    """The request cannot be used as sent."""


class BodyTooLarge(BadRequest):
    pass


class BodyTimeout(BadRequest):
    pass


class LengthRequired(BadRequest):
    pass


class LimitExceeded(BadRequest):
    pass


class Unauthorized(StreamwiseError):
    def __init__(
        self, message: str = "Unauthorized: a valid API key is required", *, ask_browser: bool = False
    ) -> None:
        super().__init__(message)
        self.ask_browser = ask_browser  # invite a browser to ask its user for the key (HTTP Basic)


class Forbidden(StreamwiseError):
    pass


class RateLimited(StreamwiseError):
    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(StreamwiseError):
    pass


class Gone(NotFound):
    pass


class Conflict(StreamwiseError):
    pass


class FlowError(StreamwiseError):
    """A chatflow cannot be run as given. `node_id` names the culprit when there is one."""

    def __init__(self, message: str, node_id: str | None = None, *, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.node_id = node_id


class GraphError(FlowError):
    """flowData is malformed: not JSON, wrong shape, unknown node, dangling reference, cycle."""


class NodeConfigError(FlowError):
    """A node's inputs are unusable (missing model name, bad number, wrong kind of reference)."""


class ModelError(StreamwiseError):
    """A chat model request failed. The message names the node; `detail` says what the server did."""

    def __init__(
        self,
        message: str,
        *,
        detail: str | None = None,
        status: int | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.status = status  # the upstream HTTP status, when there was one
        self.retry_after = retry_after


class ModelUnavailable(ModelError):
    pass


class ModelRefused(ModelError):
    pass


class ModelRateLimited(ModelError):
    pass


class ModelTimeout(ModelError):
    pass


class StorageError(StreamwiseError):
    pass


class ShuttingDown(StreamwiseError):
    def __init__(self, message: str = "Server shutting down") -> None:
        super().__init__(message)


class Unavailable(StreamwiseError):
    """A service the server needs right now (Redis, in scale-out mode) did not answer."""


class InternalError(StreamwiseError):
    pass

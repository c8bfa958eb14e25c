"""Errors the engine raises before a run starts. Transports map them to 4xx responses."""

from __future__ import annotations


class FlowError(Exception):
    """A chatflow cannot be run as given. `node_id` names the culprit when there is one."""

    status_code = 400

    def __init__(self, message: str, node_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id


class GraphError(FlowError):
    """flowData is malformed: not JSON, unknown node, dangling reference, cycle, no answering node."""


class NodeConfigError(FlowError):
    """A node's inputs are unusable (missing model name, bad number, wrong kind of reference)."""

"""Which parts of a request's `overrideConfig` a chatflow lets through, read from its `apiConfig`.

Flowise 2.x+ applies a request's overrides only where the chatflow enables them, in the JSON text of
its record's `apiConfig`, as the "Override Configuration" dialog of its UI writes it:

    {"overrideConfig": {
        "status": true,
        "nodes": {"ChatOpenAI": [{"label": "Temperature", "name": "temperature", "type": "number",
                                  "enabled": true}]},
        "variables": [{"id": "...", "name": "tone", "type": "static", "enabled": true}]}}

- `status` must be true, or no override applies at all;
- `nodes` is keyed by node *label* (`data.label` in flowData, e.g. "ChatOpenAI"), so an enabled input
  is enabled on every node of that label; each entry names an input (`name`) and is on when
  `enabled` is true. The first entry for a name decides, as in Flowise;
- `variables` enables `overrideConfig.vars` entries by variable `name`, the same way.

Keys that are about the request, not node inputs (`sessionId`), are never gated, nor are they in
Flowise. Inputs that no request may change (the node specs' protected inputs) stay refused even when
enabled: that check is the builder's, on top of this one. Whatever a policy refuses is ignored and
logged at DEBUG on the "streamwise.overrides" logger, naming the key, never the value.

Streamwise reads only JSON `true` for `status` and `enabled` (Flowise's UI writes booleans; it would
also take any truthy value), and anything malformed enables nothing: a policy is never an error.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from streamwise import jsontext
from streamwise.errors import BadRequest

logger = logging.getLogger("streamwise.overrides")

# Parsed policies kept, by apiConfig text; a text longer than this is parsed each time rather than
# pinned in memory (real ones are a few kilobytes).
CACHE_SIZE = 128
CACHE_MAX_CHARS = 64 * 1024
# How much of a request's key a log line shows: keys come from the request and may be huge.
_KEY_CHARS = 100


class OverridableNode(Protocol):
    """What a policy needs to know of a node (`engine.graph.GraphNode` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def name(self) -> str: ...


def _no_inputs() -> Mapping[str, frozenset[str]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class OverridePolicy:
    """What a chatflow lets a request override; the default lets nothing through."""

    status: bool = False  # apiConfig.overrideConfig.status
    inputs: Mapping[str, frozenset[str]] = field(default_factory=_no_inputs)  # node label → input names
    variables: frozenset[str] = frozenset()
    # Every input and variable: for the engine's own callers (tests, tools), never for a request.
    unrestricted: bool = False

    @classmethod
    def from_api_config(cls, raw: str | None) -> OverridePolicy:
        """The policy of a chatflow's `apiConfig` text; nothing enabled when it is absent or malformed."""
        if not isinstance(raw, str) or not raw.strip():
            return NO_OVERRIDES
        if len(raw) > CACHE_MAX_CHARS:
            return _parse(raw)
        return _parse_cached(raw)

    def allows_input(self, node: OverridableNode, name: str) -> bool:
        """Whether a request may override input `name` of `node` (protected inputs aside)."""
        if self.unrestricted:
            return True
        return self.status and name in self.inputs.get(node.label, ())

    def allows_variable(self, name: str) -> bool:
        """Whether a request may override the variable `name` (`overrideConfig.vars`)."""
        if self.unrestricted:
            return True
        return self.status and name in self.variables


NO_OVERRIDES = OverridePolicy()
ALLOW_ALL = OverridePolicy(status=True, unrestricted=True)


def refused_input(policy: OverridePolicy, node: OverridableNode, name: str) -> None:
    """Log that the request's override of input `name` of `node` is ignored (never its value)."""
    if logger.isEnabledFor(logging.DEBUG):
        why = (
            "not enabled for this node's label in apiConfig"
            if policy.status
            else "overrides are off (apiConfig.overrideConfig.status is not true)"
        )
        logger.debug(
            "overrideConfig %r ignored on node %s (%r): %s",
            name[:_KEY_CHARS],
            node.id,
            node.label,
            why,
        )


def permitted_variables(override_config: Mapping[str, Any] | None, policy: OverridePolicy) -> dict[str, Any]:
    """The `overrideConfig.vars` entries the policy lets through; the others are logged and dropped.

    No Streamwise node reads variables yet (there is no variable store); whatever does must take
    them from here, never from the request directly.
    """
    requested = (override_config or {}).get("vars")
    if not isinstance(requested, Mapping):
        return {}
    allowed: dict[str, Any] = {}
    for name, value in requested.items():
        if isinstance(name, str) and policy.allows_variable(name):
            allowed[name] = value
        else:
            logger.debug("overrideConfig.vars %r ignored: not enabled in apiConfig", str(name)[:_KEY_CHARS])
    return allowed


def _parse(raw: str) -> OverridePolicy:
    try:
        config = jsontext.loads(raw, "apiConfig")
    except BadRequest:
        logger.warning("A chatflow's apiConfig is not valid JSON; no overrides are enabled for it")
        return NO_OVERRIDES
    section = config.get("overrideConfig") if isinstance(config, dict) else None
    if not isinstance(section, dict) or section.get("status") is not True:
        return NO_OVERRIDES
    inputs: dict[str, frozenset[str]] = {}
    nodes = section.get("nodes")
    if isinstance(nodes, dict):
        for label, params in nodes.items():
            enabled = _enabled_names(params)
            if enabled:
                inputs[label] = enabled
    return OverridePolicy(
        status=True,
        inputs=MappingProxyType(inputs),
        variables=_enabled_names(section.get("variables")),
    )


_parse_cached = functools.lru_cache(maxsize=CACHE_SIZE)(_parse)


def _enabled_names(entries: Any) -> frozenset[str]:
    """Names whose first entry in a Flowise list (`[{"name", "enabled"}, ...]`) is enabled."""
    if not isinstance(entries, list):
        return frozenset()
    seen: set[str] = set()
    enabled: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        if not isinstance(name, str) or name in seen:
            continue
        seen.add(name)
        if entry.get("enabled") is True:
            enabled.add(name)
    return frozenset(enabled)

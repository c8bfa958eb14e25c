"""Which model servers nodes may send requests to (STREAMWISE_MODEL_ALLOWED_HOSTS).

Model and embedding nodes take their server's address from the chatflow (`basePath`, `baseUrl`), so
whoever may save a chatflow could otherwise point them, and the key they carry, anywhere. With an
allow-list set, a node whose server is not on it fails when it is built, that is when its chatflow is
saved (a 400 naming the node and the host). An empty list allows any host.

An entry is a host name (`api.openai.com`, `10.0.0.5`, `::1`) or `*.example.com`, which allows every
subdomain of example.com but not example.com itself; `*` alone allows any host. Case does not count,
and neither does a port, in the URL or in the entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from streamwise.errors import NodeConfigError

SETTING = "STREAMWISE_MODEL_ALLOWED_HOSTS"


def normalise_host(text: str) -> str:
    """Lower-case, without brackets, port or trailing dot: `[::1]:8080` → `::1`, `A.b.:443` → `a.b`."""
    host = text.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:  # host:port (a bare IPv6 address has more colons)
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether `host` is on the allow-list; every host is when the list is empty."""
    if not allowed:
        return True
    wanted = normalise_host(host)
    if not wanted:
        return False
    for entry in allowed:
        pattern = entry.strip().lower()
        if pattern == "*":
            return True
        if pattern.startswith("*."):
            suffix = normalise_host(pattern[2:])
            if suffix and wanted.endswith("." + suffix):
                return True
        elif normalise_host(pattern) == wanted:
            return True
    return False


def check_model_host(node_id: str, label: str, url: str, allowed: Sequence[str]) -> None:
    """Refuse, with a `NodeConfigError` naming the node and the host only (never the URL, whose
    userinfo or query may hold a secret), a model server URL whose host is not on the list."""
    if not allowed:
        return
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        host = None
    if not host or parts.scheme.lower() not in ("http", "https"):
        raise NodeConfigError(
            f"Node {node_id}: {label}'s server address is not an http(s) URL with a host, so it cannot "
            f"be checked against {SETTING}",
            node_id,
        )
    if not host_allowed(host, allowed):
        raise NodeConfigError(
            f"Node {node_id}: {label} may not send requests to {normalise_host(host)}: the host is not "
            f"in {SETTING}",
            node_id,
        )

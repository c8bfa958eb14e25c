"""The auth mode and the host names the server answers to, decided from settings alone.

Modes (`STREAMWISE_AUTH`):
- `auto` (default): open while the server listens on loopback only and no API key exists; once a key
  exists, or when it listens on any other address, every management route needs a valid key;
- `keys`: management routes always need a key (with none created yet, only `streamwise apikey
  create` gets one);
- `open`: management routes need no key (what `streamwise start --insecure` sets).
A chatflow bound to a key needs that key in every mode.

Host names (`STREAMWISE_ALLOWED_HOSTS`): a request whose `Host` header is not one the server answers to
is refused, so a web page cannot reach a server on loopback through a name that its attacker points
at 127.0.0.1 (DNS rebinding). By default a server listening on loopback answers to loopback names and
addresses only; one listening elsewhere answers to any name, since its keys guard it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "*.localhost")


def is_loopback(host: str) -> bool:
    """Whether a listen address reaches this machine only (`127.0.0.1`, `::1`, `localhost`)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_keys(mode: str, listen_host: str, any_keys: bool) -> bool:
    """Whether management routes need an API key now."""
    if mode == "keys":
        return True
    if mode == "open":
        return False
    return any_keys or not is_loopback(listen_host)


def host_name(host_header: str) -> str:
    """The name of a `Host` header, without port or IPv6 brackets, lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def name_matches(name: str, pattern: str) -> bool:
    """`*.example.com` matches names under example.com (not example.com itself); others exactly."""
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern.strip("[]")


@dataclass(frozen=True)
class HostRule:
    patterns: tuple[str, ...]  # empty: any host

    @classmethod
    def for_server(cls, allowed: Sequence[str], listen_host: str) -> HostRule:
        if allowed:
            chosen = tuple(pattern.lower() for pattern in allowed)
            return cls(() if "*" in chosen else chosen)
        if is_loopback(listen_host):
            return cls(LOOPBACK_NAMES)
        return cls(())

    def allows(self, host_header: str | None) -> bool:
        if not self.patterns:
            return True
        if not host_header:
            return False
        name = host_name(host_header)
        return any(name_matches(name, pattern) for pattern in self.patterns)

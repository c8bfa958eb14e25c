"""Which addresses a tool may reach, and a connection that goes only to the addresses it vetted.

A model chooses, or can be talked into choosing, the URLs that HTTP tools and MCP clients fetch, so
every request is a way for a prompt to reach into the server's own network: the cloud metadata
service at 169.254.169.254, a database on localhost, an admin page on 10.0.0.5. `NetGuard` holds the
rules of `ToolPolicy` for one call (or one MCP session):

- only http and https URLs;
- when `allowed_hosts` is not empty, only the hosts it names (`api.example.com`, or `*.example.com`
  for any name under it, not the bare domain);
- the host name is resolved once, and if any of its addresses is loopback, private, link-local,
  unspecified, multicast, reserved or shared (100.64.0.0/10), directly or wrapped in IPv6
  (`::ffff:127.0.0.1`, NAT64, 6to4), the host is refused unless `allow_private_network` is set.

Checking a name and then letting the HTTP client resolve it again would leave a gap: a DNS server
can answer a public address to the check and 127.0.0.1 to the connection (DNS rebinding). So the
guard remembers the addresses it vetted, and `GuardedBackend`, the socket layer of the httpx2 client
that `guarded_client` builds, connects to those addresses only; it never resolves anything itself.
Numeric host forms that C resolvers accept (`2130706433`, `0x7f.1`, `127.1`) are read here the same
way, so they cannot slip past as "names". TLS still checks the certificate against the host name.

Refusals are `AddressRefused` (a `ToolFailure`): their messages say which rule refused the request,
never the address a name resolved to, which the model did not know. `read_text` is the other half of
the policy, what a tool takes in: at most `max_response_bytes` of an answer.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import re
import socket
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import httpcore2
import httpx2

from streamwise.engine.tools import ToolFailure
from streamwise.nodes.services import ToolPolicy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Resolves a host name to address strings ("93.184.216.34", "2606:2800::1"); tests inject their own.
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]

_SHARED = ipaddress.IPv4Network(
    "100.64.0.0/10"
)  # carrier-grade NAT; Python calls it neither private nor global
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the last 32 bits are an IPv4 address a NAT64 gateway reaches
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# Host names that inet_aton reads as IPv4: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x).
_NUMERIC_V4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


class AddressRefused(ToolFailure):
    """The policy does not allow this URL or host; the message says which rule, not which address."""


def address_kind(ip: IPAddress) -> str | None:
    """Why an address is not on the public internet ("loopback", "private", ...), or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_kind(ip.ipv4_mapped)
        if ip in _NAT64:
            return address_kind(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL:
            return "private"
        if ip.sixtofour is not None:
            return address_kind(ip.sixtofour)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not public"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as a number stands for (IPv6, dotted IPv4 or a legacy numeric
    form such as `2130706433` or `0x7f.1`), or None when the host is a name to resolve."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    numeric = bare.rstrip(".")
    if _NUMERIC_V4.match(numeric):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(numeric))
        except OSError:
            raise AddressRefused("that host is not a valid address") from None
    return None


def host_allowed(host: str, allowed_hosts: Sequence[str], ip: IPAddress | None = None) -> bool:
    """Whether `allowed_hosts` lets this host through: empty allows all; an entry is an exact host
    (an address entry also matches other spellings of that address) or `*.suffix`."""
    if not allowed_hosts:
        return True
    name = host.lower().rstrip(".")
    for raw in allowed_hosts:
        entry = raw.strip().lower().rstrip(".")
        if entry.startswith("*."):
            if name.endswith(entry[1:]) and len(name) > len(entry) - 1:
                return True
        elif entry and (entry == name or entry.strip("[]") == name.strip("[]")):
            return True
        if ip is not None and _as_address(entry) == ip:
            return True
    return False


def _as_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for a name (one lookup)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def mapping_resolver(table: Mapping[str, Sequence[str]]) -> Resolve:
    """A resolver that answers from a table and knows no other name: for tests, and for pinning."""

    async def resolve(host: str, port: int) -> list[str]:
        try:
            return list(table[host.lower().rstrip(".")])
        except KeyError:
            raise OSError(f"no such host {host!r}") from None

    return resolve


class NetGuard:
    """The rules of one `ToolPolicy`, and the addresses already vetted under them.

    Make one per tool call (or per MCP session): a host is resolved and vetted once, and every later
    connection to it in that guard's lifetime goes to exactly those addresses.
    """

    def __init__(self, policy: ToolPolicy, *, resolve: Resolve | None = None) -> None:
        self.policy = policy
        self._resolve = resolve or system_resolve
        self._vetted: dict[str, tuple[str, ...]] = {}

    async def check_url(self, url: str | httpx2.URL) -> httpx2.URL:
        """The URL parsed the way the client will read it, once its scheme and host pass."""
        try:
            parsed = url if isinstance(url, httpx2.URL) else httpx2.URL(url)
        except (httpx2.InvalidURL, TypeError, ValueError):
            raise AddressRefused("that URL is not valid") from None
        if parsed.scheme not in ("http", "https"):
            raise AddressRefused("only http and https URLs may be requested")
        host = parsed.raw_host.decode("ascii", errors="replace")
        if not host:
            raise AddressRefused("that URL has no host")
        await self.addresses(host, parsed.port or (443 if parsed.scheme == "https" else 80))
        return parsed

    async def addresses(self, host: str, port: int) -> tuple[str, ...]:
        """The vetted addresses of a host, resolving it the first time; AddressRefused if the policy
        does not allow it."""
        cached = self._vetted.get(host)
        if cached is not None:
            return cached
        literal = literal_address(host)
        if not host_allowed(host, self.policy.allowed_hosts, literal):
            raise AddressRefused("that host is not in the server's list of allowed hosts")
        found = [literal] if literal is not None else await self._lookup(host, port)
        if not self.policy.allow_private_network:
            for ip in found:
                kind = address_kind(ip)
                if kind is not None:
                    raise AddressRefused(
                        f"the address of that host is {kind}; the server's settings do not allow it"
                    )
        vetted = tuple(dict.fromkeys(str(ip) for ip in found))
        self._vetted[host] = vetted
        return vetted

    async def _lookup(self, host: str, port: int) -> list[IPAddress]:
        try:
            answers = await self._resolve(host, port)
            found = [ipaddress.ip_address(answer) for answer in answers]
        except (OSError, UnicodeError, ValueError):
            raise ToolFailure("the host name could not be resolved") from None
        if not found:
            raise ToolFailure("the host name could not be resolved")
        return found


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's socket layer with the guard in front: it connects only to addresses the guard
    vetted for the host asked for, and never to a local socket."""

    def __init__(self, guard: NetGuard, inner: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self._guard.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore2.ConnectError("no address to connect to")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        raise AddressRefused("local sockets may not be reached")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    guard: NetGuard, *, inner: httpcore2.AsyncNetworkBackend | None = None
) -> httpx2.AsyncHTTPTransport:
    """An httpx2 transport whose every connection goes through `GuardedBackend`; no proxy from the
    environment (a proxy would make the connection for us, to an address nobody vetted)."""
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    # httpx2 offers no public way to give the pool a network backend: replace the pool it made.
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=httpx2.create_ssl_context(trust_env=False),
        max_connections=20,
        max_keepalive_connections=5,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(guard, inner),
    )
    return transport


def guarded_client(
    guard: NetGuard, *, inner: httpcore2.AsyncNetworkBackend | None = None, **options: Any
) -> httpx2.AsyncClient:
    """An httpx2 client that can reach only what the guard allows, even when it follows redirects
    itself (each new host is vetted at connect time). `options` go to `httpx2.AsyncClient`."""
    options.setdefault("follow_redirects", False)
    return httpx2.AsyncClient(transport=guarded_transport(guard, inner=inner), trust_env=False, **options)


# ---- taking in an answer: at most `ToolPolicy.max_response_bytes` --------------------------------


async def read_text(response: httpx2.Response, limit: int) -> str:
    """A streamed answer's text, read up to `limit` bytes and then dropped, so a server cannot fill
    the memory; a gzip or deflate body is inflated to `limit` bytes at most (a few kilobytes of gzip
    can hold gigabytes). The charset comes from Content-Type (UTF-8 without one), and bytes that do
    not decode become U+FFFD."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise ToolFailure("the answer is compressed in a way this tool cannot read")
    raw, cut = bytearray(), False
    async for chunk in response.aiter_raw():
        raw += chunk
        if len(raw) > limit:
            del raw[limit:]
            cut = True
            break
    data = bytes(raw)
    if encoding not in ("", "identity"):
        data, more = _inflate(data, encoding, limit)
        cut = cut or more
    try:
        decoder = codecs.getincrementaldecoder(response.charset_encoding or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # A cut may split a character in two: a decoder told there is more drops the broken half.
    return decoder.decode(data, final=not cut)


def _inflate(data: bytes, encoding: str, limit: int) -> tuple[bytes, bool]:
    """At most `limit` decompressed bytes, and whether there was more."""
    # gzip has its header; "deflate" is zlib-wrapped, or raw deflate from some servers.
    for bits in (31,) if "gzip" in encoding else (15, -15):
        inflater = zlib.decompressobj(bits)
        try:
            out = inflater.decompress(data, limit)
        except zlib.error:
            continue
        return out, bool(inflater.unconsumed_tail)
    raise ToolFailure("the compressed answer could not be read")

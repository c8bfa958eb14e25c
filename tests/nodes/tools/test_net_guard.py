"""The address policy of the HTTP tools: what it refuses, and that connections go to vetted addresses.

No test here uses real DNS or leaves 127.0.0.1: names resolve through a table injected into the guard,
and the "public" addresses a table hands out are only ever given to a socket layer that records them
and connects to the local test server instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web

from streamwise.engine.tools import ToolFailure
from streamwise.nodes.services import ToolPolicy
from streamwise.nodes.tools.net_guard import (
    AddressRefused,
    GuardedBackend,
    NetGuard,
    address_kind,
    guarded_client,
    host_allowed,
    literal_address,
    mapping_resolver,
)
from tests.nodes.tools.forwarding import Forwarding

PRIVATE_OK = ToolPolicy(allow_private_network=True)
PUBLIC_ONLY = ToolPolicy()


class CountingResolver:
    """A table of names that counts its lookups and may answer differently the second time."""

    def __init__(self, answers: dict[str, list[Sequence[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        script = self.answers[host]
        return script[min(len(self.calls) - 1, len(script) - 1)]


@pytest.fixture
async def server() -> AsyncIterator[int]:
    """A local server that answers with the Host header it received."""

    async def host(request: web.Request) -> web.Response:
        return web.Response(text=f"host={request.headers.get('Host')}")

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/", host)
    app.router.add_get("/bounce", bounce)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield int(port)
    await runner.cleanup()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_named(address: str, kind: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["192.0.2.1", "240.0.0.1", "255.255.255.255", "2001:db8::1", "::7f00:1"])
def test_other_special_ranges_are_not_public(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("[::1]", "::1"),
        ("169.254.169.254", "169.254.169.254"),
    ],
)
def test_numeric_hosts_are_read_as_addresses(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


def test_names_are_not_addresses() -> None:
    assert literal_address("example.com") is None
    assert literal_address("1e100.net") is None
    with pytest.raises(AddressRefused):
        literal_address("4294967296")  # one more than the largest IPv4 address


def test_allowed_hosts_rules() -> None:
    allowed = ("api.example.com", "*.corp.example", "127.0.0.1")
    assert host_allowed("anything.org", ())
    assert host_allowed("API.Example.com.", allowed)
    assert host_allowed("a.b.corp.example", allowed)
    assert not host_allowed("corp.example", allowed)  # the suffix form does not take the bare domain
    assert not host_allowed("evilcorp.example", allowed)
    assert not host_allowed("api.example.com.evil.org", allowed)
    assert host_allowed("127.1", allowed, ipaddress.ip_address("127.0.0.1"))  # another spelling of it
    assert not host_allowed("127.0.0.2", allowed, ipaddress.ip_address("127.0.0.2"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://127.1/",
        "http://good.com@127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://0.0.0.0/",
        "http://[fe80::1%25eth0]/",
        "http://evil.test/",
        "http://META.test./",
        "http://mixed.test/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http:///nohost",
        "gopher://example.com:70/",
    ],
)
async def test_refused_urls(url: str) -> None:
    resolve = mapping_resolver(
        {"evil.test": ["127.0.0.1"], "meta.test": ["169.254.169.254"], "mixed.test": ["8.8.8.8", "10.0.0.1"]}
    )
    with pytest.raises(AddressRefused) as refused:
        await NetGuard(PUBLIC_ONLY, resolve=resolve).check_url(url)
    # The message names the rule, never what the name resolved to.
    for address in ("127.0.0.1", "169.254.169.254", "10.0.0.1"):
        assert address not in refused.value.message or address in url


async def test_refusal_messages_say_what_was_refused() -> None:
    guard = NetGuard(PUBLIC_ONLY, resolve=mapping_resolver({"evil.test": ["10.9.8.7"]}))
    with pytest.raises(AddressRefused, match="the address of that host is private; the server's settings"):
        await guard.check_url("http://evil.test/")
    with pytest.raises(AddressRefused, match="only http and https"):
        await guard.check_url("ftp://evil.test/")


async def test_hosts_outside_the_list_are_refused_before_any_lookup() -> None:
    resolve = CountingResolver({"api.example.com": [["8.8.8.8"]], "other.example": [["8.8.8.8"]]})
    guard = NetGuard(ToolPolicy(allowed_hosts=("api.example.com",)), resolve=resolve)
    with pytest.raises(AddressRefused, match="not in the server's list of allowed hosts"):
        await guard.check_url("https://other.example/")
    assert resolve.calls == []
    await guard.check_url("https://api.example.com/v1")
    assert resolve.calls == ["api.example.com"]


async def test_unresolvable_names_fail_without_detail() -> None:
    guard = NetGuard(PUBLIC_ONLY, resolve=mapping_resolver({}))
    with pytest.raises(ToolFailure, match="could not be resolved"):
        await guard.check_url("https://nowhere.test/")


async def test_private_addresses_pass_when_the_settings_allow_them() -> None:
    guard = NetGuard(PRIVATE_OK, resolve=mapping_resolver({"db.test": ["10.0.0.5"]}))
    assert await guard.addresses("db.test", 80) == ("10.0.0.5",)
    assert await guard.addresses("127.1", 80) == ("127.0.0.1",)


async def test_a_name_is_resolved_once_and_the_connection_goes_to_that_address(server: int) -> None:
    resolve = CountingResolver({"evil.test": [["127.0.0.1"]]})
    guard = NetGuard(PRIVATE_OK, resolve=resolve)
    url = f"http://evil.test:{server}/"
    async with guarded_client(guard) as client:
        await guard.check_url(url)
        response = await client.get(url)
        again = await client.get(url)
    # The name no real resolver knows reached the local server, through the one lookup the guard made.
    assert response.text == f"host=evil.test:{server}"
    assert again.status_code == 200
    assert resolve.calls == ["evil.test"]


async def test_a_rebinding_name_still_connects_to_the_address_first_vetted(server: int) -> None:
    # First answer public, every later answer loopback: the classic DNS rebinding trick.
    resolve = CountingResolver({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    internet = Forwarding(server)
    guard = NetGuard(PUBLIC_ONLY, resolve=resolve)
    url = f"http://rebind.test:{server}/"
    async with guarded_client(guard, inner=internet) as client:
        await guard.check_url(url)
        response = await client.get(url)
    assert response.status_code == 200
    assert internet.seen == ["93.184.216.34"]
    assert resolve.calls == ["rebind.test"]


async def test_the_client_refuses_at_connect_time_without_a_prior_check(server: int) -> None:
    guard = NetGuard(PUBLIC_ONLY, resolve=mapping_resolver({"evil.test": ["127.0.0.1"]}))
    async with guarded_client(guard) as client:
        for url in (
            f"http://evil.test:{server}/",
            f"http://127.0.0.1:{server}/",
            f"http://2130706433:{server}/",
        ):
            with pytest.raises(AddressRefused, match="loopback"):
                await client.get(url)


async def test_redirects_followed_by_the_client_are_vetted_too(server: int) -> None:
    # A client that follows redirects itself (as an MCP client may): the second hop is checked at
    # connect time, and its loopback address is refused although the first hop was allowed.
    resolve = mapping_resolver({"public.test": ["93.184.216.34"], "inner.test": ["127.0.0.1"]})
    internet = Forwarding(server)
    guard = NetGuard(PUBLIC_ONLY, resolve=resolve)
    target = f"http://inner.test:{server}/"
    async with guarded_client(guard, inner=internet, follow_redirects=True) as client:
        with pytest.raises(AddressRefused, match="loopback"):
            await client.get(f"http://public.test:{server}/bounce", params={"to": target})
    assert internet.seen == ["93.184.216.34"]


async def test_local_sockets_are_refused() -> None:
    backend = GuardedBackend(NetGuard(PRIVATE_OK))
    with pytest.raises(AddressRefused):
        await backend.connect_unix_socket("/var/run/docker.sock")

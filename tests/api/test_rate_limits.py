"""Rate limits (chatflow config, the limiter on memory and on real Redis), stream slots, client address."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from streamwise.api.rate_limits import (
    DEFAULT_LIMIT_MESSAGE,
    MAX_LIMIT,
    MAX_WINDOW_SECONDS,
    RateLimit,
    RateLimiter,
    StreamSlots,
    TrustedProxies,
    chatflow_rate_limit,
)
from streamwise.api.rate_limits import client_address as address
from tests.support.redis import REDIS_URL, delete_matching, keys_matching

DEFAULT = RateLimit(max=100, seconds=60)


def _config(**rate_limit: object) -> str:
    return json.dumps({"rateLimit": rate_limit})


# --- chatflow_rate_limit ---------------------------------------------------------------------


def test_flowise_ui_config_with_string_fields() -> None:
    text = _config(status=True, limitMax="5", limitDuration="60", limitMsg="Slow down")
    assert chatflow_rate_limit(text, DEFAULT) == RateLimit(5, 60, "Slow down")
    assert chatflow_rate_limit(text, None) == RateLimit(5, 60, "Slow down")


def test_config_with_number_fields() -> None:
    text = _config(status=True, limitMax=5, limitDuration=60.0, limitMsg="Slow down")
    assert chatflow_rate_limit(text, None) == RateLimit(5, 60, "Slow down")


def test_config_from_before_the_status_switch_is_enforced_as_flowise_does() -> None:
    text = _config(limitMax="3", limitDuration="10", limitMsg="Wait")
    assert chatflow_rate_limit(text, DEFAULT) == RateLimit(3, 10, "Wait")
    assert chatflow_rate_limit(_config(), DEFAULT) == DEFAULT


def test_status_false_falls_back_to_the_default() -> None:
    text = _config(status=False, limitMax="5", limitDuration="60", limitMsg="Slow down")
    assert chatflow_rate_limit(text, DEFAULT) == DEFAULT
    assert chatflow_rate_limit(text, None) is None
    assert chatflow_rate_limit(json.dumps({"rateLimit": {"status": False}}), DEFAULT) == DEFAULT


def test_empty_message_gets_the_default_text() -> None:
    for message in ("", "   ", None, 42):
        text = _config(status=True, limitMax="2", limitDuration="1", limitMsg=message)
        limit = chatflow_rate_limit(text, None)
        assert limit == RateLimit(2, 1, DEFAULT_LIMIT_MESSAGE)
    assert DEFAULT_LIMIT_MESSAGE == "Too many requests, please try again later."
    assert RateLimit(1, 1).message == DEFAULT_LIMIT_MESSAGE


def test_fractions_round_towards_the_stricter_whole_number() -> None:
    text = _config(status=True, limitMax="2.9", limitDuration="1.2", limitMsg="m")
    assert chatflow_rate_limit(text, None) == RateLimit(2, 2, "m")
    text = _config(status=True, limitMax="1e1", limitDuration=" 60 ", limitMsg="m")
    assert chatflow_rate_limit(text, None) == RateLimit(10, 60, "m")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{",
        "[]",
        '"rateLimit"',
        "null",
        "42",
        json.dumps({"rateLimit": []}),
        json.dumps({"rateLimit": "on"}),
        json.dumps({"other": {}}),
        "[" * 100_000,
        _config(status=True, limitMax="0", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="-1", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="0.5", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="5", limitDuration="0", limitMsg="m"),
        _config(status=True, limitMax="5", limitDuration=-60, limitMsg="m"),
        _config(status=True, limitMax="five", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="5", limitDuration="", limitMsg="m"),
        _config(status=True, limitMax="nan", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="Infinity", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="1e400", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="0x10", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax="1_000", limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax=True, limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax=None, limitDuration="60", limitMsg="m"),
        _config(status=True, limitMax=[5], limitDuration="60", limitMsg="m"),
        _config(status=True, limitDuration="60", limitMsg="m"),
        _config(status=True),
        _config(status="true", limitMax="5", limitDuration="60", limitMsg="m"),
        _config(status=1, limitMax="5", limitDuration="60", limitMsg="m"),
        '{"rateLimit": {"status": true, "limitMax": NaN, "limitDuration": 60}}',
    ],
)
def test_malformed_configs_fall_back_to_the_default(text: str) -> None:
    assert chatflow_rate_limit(text, DEFAULT) == DEFAULT
    assert chatflow_rate_limit(text, None) is None


def test_no_config_is_the_default() -> None:
    assert chatflow_rate_limit(None, DEFAULT) == DEFAULT
    assert chatflow_rate_limit(None, None) is None


def test_parsing_is_cached_by_text() -> None:
    text = _config(status=True, limitMax="4", limitDuration="9", limitMsg=str(uuid.uuid4()))
    assert chatflow_rate_limit(text, None) is chatflow_rate_limit(text, DEFAULT)


def test_rate_limit_rejects_impossible_values() -> None:
    with pytest.raises(ValueError):
        RateLimit(0, 60)
    with pytest.raises(ValueError):
        RateLimit(5, 0)


# --- RateLimiter -----------------------------------------------------------------------------


@pytest.fixture(params=["memory://", REDIS_URL], ids=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    uri: str = request.param
    prefix = f"streamwise-test-{uuid.uuid4()}"
    rate_limiter = RateLimiter(uri, prefix=prefix)
    try:
        yield rate_limiter
    finally:
        await rate_limiter.aclose()
        if uri.startswith("redis"):
            await delete_matching(f"{prefix}:*")
            assert await keys_matching(f"{prefix}:*") == []


async def test_exactly_max_requests_pass_under_concurrency(limiter: RateLimiter) -> None:
    limit = RateLimit(max=7, seconds=30)
    async with asyncio.timeout(30):
        results = await asyncio.gather(*(limiter.hit("flow-1", "key-1", limit) for _ in range(100)))
    assert results.count(None) == 7
    waits = [wait for wait in results if wait is not None]
    assert len(waits) == 93
    assert all(1 <= wait <= 30 and wait == int(wait) for wait in waits)


async def test_requests_pass_again_after_the_window(limiter: RateLimiter) -> None:
    limit = RateLimit(max=3, seconds=1)
    async with asyncio.timeout(15):
        assert [await limiter.hit("flow-1", "10.0.0.1", limit) for _ in range(3)] == [None] * 3
        assert await limiter.hit("flow-1", "10.0.0.1", limit) == 1
        await asyncio.sleep(1.1)
        assert await limiter.hit("flow-1", "10.0.0.1", limit) is None


async def test_buckets_and_clients_are_counted_apart(limiter: RateLimiter) -> None:
    limit = RateLimit(max=1, seconds=30)
    async with asyncio.timeout(15):
        assert await limiter.hit("a/b", "c", limit) is None
        assert await limiter.hit("a/b", "c", limit) is not None
        # Names with the key separator in them must not meet another bucket's key.
        assert await limiter.hit("a", "b/c", limit) is None
        assert await limiter.hit("a/b", "d", limit) is None
        assert await limiter.hit("other", "c", limit) is None
        assert await limiter.hit("other", "2001:db8::1", limit) is None


async def test_redis_keys_carry_the_prefix() -> None:
    prefix = f"streamwise-test-{uuid.uuid4()}"
    rate_limiter = RateLimiter(REDIS_URL, prefix=prefix)
    try:
        async with asyncio.timeout(15):
            assert await rate_limiter.hit("flow-1", "key-1", RateLimit(2, 30)) is None
            assert await rate_limiter.hit("flow-2", "key-1", RateLimit(2, 30)) is None
            keys = await keys_matching(f"{prefix}:*")
        assert len(keys) == 2
        assert all(key.startswith(f"{prefix}:".encode()) for key in keys)
    finally:
        await rate_limiter.aclose()
        await delete_matching(f"{prefix}:*")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_redis_that_is_not_there_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    rate_limiter = RateLimiter(f"redis://127.0.0.1:{_free_port()}/0", prefix="unused")
    limit = RateLimit(max=1, seconds=60)
    try:
        with caplog.at_level(logging.WARNING, logger="streamwise.api.rate_limits"):
            started = time.monotonic()
            async with asyncio.timeout(10):
                results = [await rate_limiter.hit("flow-1", "key-1", limit) for _ in range(5)]
            assert time.monotonic() - started < 5
    finally:
        await rate_limiter.aclose()
    assert results == [None] * 5
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "letting requests through" in warnings[0].getMessage()


async def test_redis_that_never_answers_does_not_hang_requests() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # read commands, answer none, until the client hangs up
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rate_limiter = RateLimiter(f"redis://127.0.0.1:{port}/0", prefix="unused")
    try:
        started = time.monotonic()
        async with asyncio.timeout(10):
            assert await rate_limiter.hit("flow-1", "key-1", RateLimit(1, 60)) is None
            first = time.monotonic() - started
            # After a failure the store is left alone for a while: no more waiting.
            assert await rate_limiter.hit("flow-1", "key-1", RateLimit(1, 60)) is None
        assert 1 < first < 5
        assert time.monotonic() - started - first < 0.5
    finally:
        await rate_limiter.aclose()
        server.close()
        async with asyncio.timeout(10):
            await server.wait_closed()


def test_unknown_storage_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter("memcached://127.0.0.1:11211")


async def test_redis_unix_and_tls_urls_are_accepted() -> None:
    for uri in ("redis+unix:///tmp/does-not-exist.sock?db=0", "rediss://127.0.0.1:6380/0"):
        await RateLimiter(uri).aclose()


# --- StreamSlots -----------------------------------------------------------------------------


def test_stream_slots_limit_each_client() -> None:
    slots = StreamSlots(2)
    assert slots.acquire("a") and slots.acquire("a")
    assert not slots.acquire("a")
    assert slots.acquire("b")
    assert slots.open_streams("a") == 2
    slots.release("a")
    assert slots.acquire("a")
    assert not slots.acquire("a")


def test_stream_slots_zero_is_unlimited() -> None:
    slots = StreamSlots(0)
    assert all(slots.acquire("a") for _ in range(1000))
    assert slots.open_streams("a") == 1000
    with pytest.raises(ValueError):
        StreamSlots(-1)


def test_stream_slots_do_not_grow_or_go_below_zero() -> None:
    slots = StreamSlots(1)
    for n in range(1000):
        assert slots.acquire(f"client-{n}")
        slots.release(f"client-{n}")
    assert len(slots) == 0
    slots.release("never-seen")
    slots.release("never-seen")
    assert len(slots) == 0
    assert slots.acquire("never-seen")
    assert not slots.acquire("never-seen")


# --- client_address --------------------------------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert address("203.0.113.5", None, []) == "203.0.113.5"
    assert address("203.0.113.5", "198.51.100.7", []) == "203.0.113.5"
    assert address(None, "198.51.100.7", []) == "unknown"
    assert address("testclient", "198.51.100.7", ["10.0.0.0/8"]) == "testclient"


def test_a_trusted_proxy_chain_is_walked_from_the_right() -> None:
    trusted = ["10.0.0.1", "10.1.0.0/16"]
    assert address("10.0.0.1", "198.51.100.7", trusted) == "198.51.100.7"
    assert address("10.0.0.1", "198.51.100.7, 10.1.2.3", trusted) == "198.51.100.7"
    # Whatever the client wrote itself stays left of the address the first proxy saw.
    assert address("10.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", trusted) == "198.51.100.7"
    assert address("10.0.0.1", None, trusted) == "10.0.0.1"
    assert address("10.0.0.1", "", trusted) == "10.0.0.1"
    # Only proxies in the header: the leftmost is as close to the client as is known.
    assert address("10.0.0.1", "10.1.0.9, 10.1.2.3", trusted) == "10.1.0.9"


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    assert address("203.0.113.5", "10.0.0.1, 127.0.0.1", ["10.0.0.0/8", "127.0.0.1"]) == "203.0.113.5"


def test_networks_are_matched_by_cidr() -> None:
    assert address("172.16.5.4", "198.51.100.7", ["172.16.0.0/12"]) == "198.51.100.7"
    assert address("172.32.0.1", "198.51.100.7", ["172.16.0.0/12"]) == "172.32.0.1"
    assert address("10.9.9.9", "198.51.100.7", ["10.0.0.1/8"]) == "198.51.100.7"


def test_ipv6_addresses() -> None:
    assert address("::1", "2001:DB8:0:0::1", ["::1"]) == "2001:db8::1"
    assert address("fd00::5", "2001:db8::7, fd12::1", ["fd00::/8"]) == "2001:db8::7"
    assert address("2001:db8::9", "198.51.100.7", ["fd00::/8"]) == "2001:db8::9"
    # An IPv4 peer on a dual-stack socket.
    assert address("::ffff:10.0.0.2", "198.51.100.7", ["10.0.0.0/8"]) == "198.51.100.7"
    assert address("::ffff:203.0.113.5", None, []) == "203.0.113.5"


def test_a_malformed_entry_stops_the_walk() -> None:
    trusted = ["10.0.0.0/8"]
    assert address("10.0.0.1", "198.51.100.7, garbage, 10.0.0.9", trusted) == "10.0.0.9"
    assert address("10.0.0.1", "198.51.100.7, unknown", trusted) == "10.0.0.1"
    assert address("10.0.0.1", "198.51.100.7,, 10.0.0.9", trusted) == "10.0.0.9"
    assert address("10.0.0.1", "198.51.100.7:5555", trusted) == "10.0.0.1"
    assert address("10.0.0.1", "garbage, 198.51.100.7", trusted) == "198.51.100.7"


def test_trusted_proxies_parse_once_and_refuse_bad_entries() -> None:
    trusted = TrustedProxies([" 10.0.0.0/8 ", "", "::1"])
    assert len(trusted.networks) == 2
    assert address("::1", "198.51.100.7", trusted) == "198.51.100.7"
    assert trusted.client_address("10.2.3.4", "198.51.100.7, 10.0.0.9") == "198.51.100.7"
    assert trusted.client_address("203.0.113.5", "198.51.100.7") == "203.0.113.5"
    assert not TrustedProxies([])
    with pytest.raises(ValueError):
        TrustedProxies(["10.0.0.0/33"])
    with pytest.raises(ValueError):
        TrustedProxies(["proxy.example"])


@pytest.mark.parametrize(
    ("limit_max", "duration"), [("1e300", "60"), ("5", "1e300"), ("999999999999999999999999", "1e308")]
)
def test_huge_limits_and_windows_are_held_to_bounds(limit_max: str, duration: str) -> None:
    config = json.dumps({"rateLimit": {"status": True, "limitMax": limit_max, "limitDuration": duration}})
    limit = chatflow_rate_limit(config, None)
    assert limit is not None
    assert limit.max <= MAX_LIMIT and limit.seconds <= MAX_WINDOW_SECONDS

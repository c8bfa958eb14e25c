"""The Redis event log against real Redis: codec, batching, cursors, fencing, expiry, failures."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, get_args

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamwise.distributed import eventlog
from streamwise.distributed.codec import EVENT_TYPES, CodecError, Entry, decode_entries, encode_entries
from streamwise.distributed.event_reader import RedisEventReader
from streamwise.distributed.eventlog import (
    EventsLost,
    Fenced,
    LogConflict,
    RedisEventWriter,
    RunGone,
    last_event_number,
    take_over,
)
from streamwise.distributed.keys import Keys
from streamwise.engine.events import (
    Abort,
    CalledTools,
    End,
    Error,
    Event,
    Metadata,
    Restart,
    SourceDocuments,
    Start,
    Token,
    UsedTools,
)
from tests.support.redis import REDIS_URL
from tests.support.waiting import until

RUN = "run-1"

SAMPLES: list[Event] = [
    Start(),
    Start("first chunk"),
    Token("a token object"),
    SourceDocuments([{"pageContent": "text\nmore", "metadata": {"source": "a.pdf", "page": 3}}]),
    UsedTools([{"tool": "calc", "toolInput": {"x": 1.5}, "toolOutput": "2"}]),
    CalledTools([{"tool": "search", "toolInput": {"q": "ünïcode"}, "toolOutput": ""}]),
    Metadata({"chatId": "c1", "chatMessageId": "m1", "flags": [True, False, None], "n": 2**62}),
    Metadata(),
    Error("something failed: «quoted»"),
    Abort(),
    Restart({"attempt": 2, "reason": "the worker was lost"}),
    End(),
]
TOKENS = [
    "",
    "plain",
    " lead",
    "héllo",
    "日本語",
    "emoji 🎉👩‍👩‍👧",
    "line\nbreak\r\n",
    '"q" \\ /',
    "\x00\t",
    "[DONE]",
]


async def _writer(redis: aioredis.Redis, keys: Keys, **options: Any) -> RedisEventWriter:
    attempt = await take_over(redis, keys, RUN)
    return RedisEventWriter(redis, keys, RUN, attempt, **options)


async def _read_all(reader: RedisEventReader, after: int = 0, within: float = 10) -> list[Entry]:
    got: list[Entry] = []
    async with asyncio.timeout(within):
        async for batch in reader.batches(after):
            got.extend(batch)
    return got


async def _entries(redis: aioredis.Redis, keys: Keys) -> list[tuple[str, dict[bytes, bytes]]]:
    rows: Any = await redis.xrange(keys.events(RUN))
    return [(entry_id.decode(), fields) for entry_id, fields in rows]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- codec --------------------------------------------------------------------------------------


def test_the_samples_cover_every_event_type() -> None:
    assert {type(event) for event in SAMPLES} == set(get_args(Event)) == set(EVENT_TYPES.values())


def test_every_event_type_and_token_round_trips_through_the_codec() -> None:
    entries: list[Entry] = [*SAMPLES, *TOKENS]
    decoded, ended = decode_entries(encode_entries(entries))
    assert decoded == entries and ended
    assert [type(entry) for entry in decoded] == [type(entry) for entry in entries]
    assert decode_entries(encode_entries(TOKENS)) == (TOKENS, False)
    assert encode_entries(["a", End()]) == b'["a",["End",{"data":"[DONE]"}]]'


def test_the_codec_refuses_what_it_cannot_write_or_read() -> None:
    with pytest.raises(CodecError):
        encode_entries([Metadata({"bad": {1, 2}})])
    non_str_keys: dict[Any, Any] = {1: "x"}
    with pytest.raises(CodecError):
        encode_entries([Metadata(non_str_keys)])
    for data in [b"not json", b'{"a":1}', b'[["Nope",{"data":""}]]', b'[["End",{"x":1}]]', b"[1]"]:
        with pytest.raises(CodecError):
            decode_entries(data)


def test_a_lone_surrogate_in_a_token_is_replaced_not_fatal() -> None:
    assert decode_entries(encode_entries(["ok", "bad \ud800 half"]))[0] == ["ok", "bad \ufffd half"]


# -- writing and reading ------------------------------------------------------------------------


async def test_every_event_type_and_token_round_trips_through_redis(
    redis: aioredis.Redis, keys: Keys
) -> None:
    async with await _writer(redis, keys) as writer:
        writer.emit_tokens(TOKENS)
        for event in SAMPLES[:-1]:
            writer.emit(event)
        writer.emit_tokens(["after", ""])
        writer.emit(End())
    expected: list[Entry] = [*TOKENS, *SAMPLES[:-1], "after", "", End()]
    assert await _read_all(RedisEventReader(redis, keys, RUN)) == expected
    assert writer.emitted == writer.appended == len(expected)


async def test_a_burst_of_tokens_is_a_few_appends_and_read_back_in_order(
    redis: aioredis.Redis, keys: Keys
) -> None:
    tokens = [f"t{i} " for i in range(2000)]
    writer = await _writer(redis, keys)
    for i, token in enumerate(tokens):
        writer.emit_tokens([token])
        if i % 50 == 49:
            await asyncio.sleep(0)  # a model's reads: the loop turns between them
    writer.emit(End())
    await writer.aclose()
    length = await redis.xlen(keys.events(RUN))
    print(f"\n2000 tokens + End in a burst: {writer.appends} XADDs ({length} stream entries)")
    assert writer.appends == length <= 10
    got = await _read_all(RedisEventReader(redis, keys, RUN))
    assert got == [*tokens, End()]


async def test_tokens_trickling_in_are_batched_by_time(redis: aioredis.Redis, keys: Keys) -> None:
    writer = await _writer(redis, keys, batch_seconds=0.02)
    started = time.monotonic()
    for i in range(200):
        writer.emit_tokens([str(i)])
        await asyncio.sleep(0.001)
    elapsed = time.monotonic() - started
    writer.emit(End())
    await writer.aclose()
    print(f"\n200 tokens over {elapsed:.2f} s, batch_seconds=0.02: {writer.appends} XADDs")
    assert writer.appends <= elapsed / 0.02 + 3
    assert await _read_all(RedisEventReader(redis, keys, RUN)) == [*map(str, range(200)), End()]


async def test_a_batch_waits_for_batch_seconds_but_the_first_token_a_quiet_writer_end_and_flush_do_not(
    redis: aioredis.Redis, keys: Keys
) -> None:
    writer = await _writer(redis, keys, batch_seconds=1.0)
    started = time.monotonic()
    writer.emit_tokens(["a"])  # the run's first token: at once
    await until(lambda: writer.appended == 1, within=0.9)
    writer.emit_tokens(["b"])  # within batch_seconds of the last append: it waits
    await asyncio.sleep(0.1)
    assert await redis.xlen(keys.events(RUN)) == 1
    await until(lambda: writer.appended == 2, within=2)
    assert time.monotonic() - started >= 1.0
    await asyncio.sleep(1.0)  # quiet for batch_seconds: the next token goes at once
    quiet = time.monotonic()
    writer.emit_tokens(["c"])
    await until(lambda: writer.appended == 3, within=0.9)
    writer.emit_tokens(["d"])
    flushing = time.monotonic()
    await writer.flush()
    assert time.monotonic() - flushing < 0.9
    writer.emit_tokens(["e"])
    writer.emit(End())
    await until(lambda: writer.appended == 6, within=0.9)
    assert time.monotonic() - quiet < 1.0
    assert [entry_id for entry_id, _ in await _entries(redis, keys)] == ["0-1", "0-2", "0-3", "0-4", "0-6"]


async def test_entries_carry_their_first_event_and_the_id_of_their_last(
    redis: aioredis.Redis, keys: Keys
) -> None:
    writer = await _writer(redis, keys)
    writer.emit_tokens(["a", "b", "c"])
    await writer.flush()
    writer.emit(Metadata({"k": "v"}))
    writer.emit_tokens(["d"])
    writer.emit(End())
    await writer.aclose()
    rows = await _entries(redis, keys)
    assert [(entry_id, fields[b"f"], fields[b"a"]) for entry_id, fields in rows] == [
        ("0-3", b"1", b"1"),
        ("0-6", b"4", b"1"),
    ]
    assert decode_entries(rows[0][1][b"d"]) == (["a", "b", "c"], False)
    assert await last_event_number(redis, keys, RUN) == 6


async def test_reading_after_any_k_gives_exactly_the_events_after_it(
    redis: aioredis.Redis, keys: Keys
) -> None:
    writer = await _writer(redis, keys)
    expected: list[Entry] = []
    for size in [1, 3, 5, 2, 4]:  # known batch boundaries: 1, 4, 9, 11, 15
        chunk = [f"{len(expected) + i + 1}" for i in range(size)]
        writer.emit_tokens(chunk)
        expected.extend(chunk)
        await writer.flush()
    writer.emit(Metadata({"done": True}))
    writer.emit(End())
    expected += [Metadata({"done": True}), End()]
    await writer.aclose()
    reader = RedisEventReader(redis, keys, RUN)
    for k in range(len(expected) + 1):
        got: list[Entry] = []
        cursor, ended = k, False
        while not ended:
            entries, cursor, ended = await reader.read(cursor, block_seconds=1)
            assert entries or ended
            got.extend(entries)
        assert got == expected[k:], k
        assert cursor == len(expected) if k < len(expected) else cursor == k
        assert await _read_all(RedisEventReader(redis, keys, RUN), after=k) == expected[k:]


async def test_readers_attaching_mid_run_and_after_the_end_get_everything(
    redis: aioredis.Redis, keys: Keys
) -> None:
    writer = await _writer(redis, keys)
    first = [f"a{i}" for i in range(100)]
    writer.emit(Start())
    writer.emit_tokens(first)
    await writer.flush()
    early = asyncio.create_task(_read_all(RedisEventReader(redis, keys, RUN)))
    await asyncio.sleep(0.05)
    second = [f"b{i}" for i in range(100)]
    for token in second:
        writer.emit_tokens([token])
        await asyncio.sleep(0.0005)
    writer.emit(End())
    await writer.aclose()
    expected: list[Entry] = [Start(), *first, *second, End()]
    assert await early == expected
    assert await _read_all(RedisEventReader(redis, keys, RUN)) == expected


async def test_a_reader_resuming_at_the_end_returns_at_once(redis: aioredis.Redis, keys: Keys) -> None:
    async with await _writer(redis, keys) as writer:
        writer.emit_tokens(["x"])
        writer.emit(End())
    started = time.monotonic()
    assert await RedisEventReader(redis, keys, RUN).read(2, block_seconds=5) == ([], 2, True)
    assert await _read_all(RedisEventReader(redis, keys, RUN), after=2) == []
    assert time.monotonic() - started < 1


async def test_batches_yields_heartbeats_while_idle(redis: aioredis.Redis, keys: Keys) -> None:
    writer = await _writer(redis, keys)
    reader = RedisEventReader(redis, keys, RUN)
    got: list[list[Entry]] = []
    started = time.monotonic()
    async with asyncio.timeout(10):
        async for batch in reader.batches(idle=0.1):
            got.append(batch)
            if len(got) == 3:
                writer.emit_tokens(["x"])
                writer.emit(End())
    assert got[:3] == [[], [], []] and [e for batch in got for e in batch] == ["x", End()]
    assert 0.25 < time.monotonic() - started < 3
    assert reader.cursor == 2
    await writer.aclose()


async def test_a_cancelled_flush_leaves_the_writer_and_other_flushes_working(
    redis: aioredis.Redis, keys: Keys
) -> None:
    writer = await _writer(redis, keys, batch_seconds=0.05)
    writer.emit_tokens(["a"])
    cancelled = asyncio.create_task(writer.flush())
    other = asyncio.create_task(writer.flush())
    await asyncio.sleep(0)
    cancelled.cancel()
    async with asyncio.timeout(5):
        await other
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        writer.emit_tokens(["b"])
        writer.emit(End())
        await writer.aclose()
    assert writer.failure is None
    assert await _read_all(RedisEventReader(redis, keys, RUN)) == ["a", "b", End()]


async def test_emitting_after_end_or_close_is_refused(redis: aioredis.Redis, keys: Keys) -> None:
    writer = await _writer(redis, keys)
    writer.emit(End())
    with pytest.raises(RuntimeError, match="after end"):
        writer.emit_tokens(["late"])
    await writer.aclose()
    other = RedisEventWriter(redis, keys, "run-2", await take_over(redis, keys, "run-2"))
    await other.aclose()
    with pytest.raises(RuntimeError):
        other.emit(Token("late"))


async def test_an_event_the_codec_refuses_is_refused_at_emit_and_the_writer_goes_on(
    redis: aioredis.Redis, keys: Keys
) -> None:
    async with await _writer(redis, keys) as writer:
        with pytest.raises(CodecError):
            writer.emit(Metadata({"bad": object()}))
        writer.emit_tokens(["fine"])
        writer.emit(End())
    assert await _read_all(RedisEventReader(redis, keys, RUN)) == ["fine", End()]


async def test_a_resp3_client_writes_and_reads_the_same_log(keys: Keys) -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5, protocol=3)
    try:
        async with await _writer(client, keys) as writer:
            writer.emit_tokens(["a", "b"])
            await writer.flush()
            writer.emit(Metadata({"k": 1}))
            writer.emit(End())
        reader = RedisEventReader(client, keys, RUN)
        assert await reader.read(1, block_seconds=1) == (["b", Metadata({"k": 1}), End()], 4, True)
        assert await last_event_number(client, keys, RUN) == 4
    finally:
        await client.aclose()


def test_clients_that_decode_responses_are_refused() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisEventWriter(client, Keys(), RUN, 1)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisEventReader(client, Keys(), RUN)


# -- fencing ------------------------------------------------------------------------------------


async def test_a_writer_taken_over_is_fenced_and_the_new_one_continues(
    redis: aioredis.Redis, keys: Keys
) -> None:
    a = RedisEventWriter(redis, keys, RUN, await take_over(redis, keys, RUN))
    assert a.attempt == 1
    a.emit(Start())
    a.emit_tokens(["a1", "a2"])
    await a.flush()
    attempt = await take_over(redis, keys, RUN)
    assert attempt == 2
    a.emit_tokens(["a3"])
    with pytest.raises(Fenced, match="taken over"):
        await a.flush()
    with pytest.raises(Fenced):
        a.emit_tokens(["a4"])
    with pytest.raises(Fenced):
        await a.aclose()
    start = await last_event_number(redis, keys, RUN)
    assert start == 3
    async with RedisEventWriter(redis, keys, RUN, attempt, start=start) as b:
        b.emit_tokens(["b1", "b2"])
        b.emit(End())
    assert [fields[b"a"] for _, fields in await _entries(redis, keys)] == [b"1", b"2"]
    assert await _read_all(RedisEventReader(redis, keys, RUN)) == [Start(), "a1", "a2", "b1", "b2", End()]


async def test_a_fenced_background_append_stops_the_writer(redis: aioredis.Redis, keys: Keys) -> None:
    a = await _writer(redis, keys)
    await take_over(redis, keys, RUN)
    a.emit_tokens(["stale"])  # no flush: the background append is refused
    await until(lambda: a.failure is not None, within=2)
    assert isinstance(a.failure, Fenced)
    with pytest.raises(Fenced):
        a.emit(End())
    assert await redis.exists(keys.events(RUN)) == 0


async def test_a_writer_with_a_stale_start_conflicts(redis: aioredis.Redis, keys: Keys) -> None:
    async with await _writer(redis, keys) as writer:
        writer.emit_tokens(["a", "b"])
    stale = RedisEventWriter(redis, keys, RUN, writer.attempt, start=1)
    stale.emit_tokens(["c"])
    with pytest.raises(LogConflict):
        await stale.flush()


async def test_the_append_script_contract(redis: aioredis.Redis, keys: Keys) -> None:
    script = redis.register_script(eventlog._APPEND)
    key_list = [keys.events(RUN), keys.attempt(RUN)]

    async def append(attempt: int, last: int, first: int) -> list[Any]:
        reply: list[Any] = await script(keys=key_list, args=[attempt, f"0-{last}", first, b'["x"]', 100, 60])
        return reply

    assert await append(1, 1, 1) == [0, b""]  # no attempt yet: fenced
    assert await take_over(redis, keys, RUN) == 1
    assert await append(1, 3, 2) == [2, b""]  # events 1.. were never written (or expired): gone
    assert await append(1, 1, 1) == [1, b"0-1"]
    assert await append(1, 1, 1) == [1, b"0-1"]  # the same append retried: recognised, not doubled
    assert (await append(1, 1, 2))[0] == 3  # a different append at a used id: refused
    assert await append(2, 2, 2) == [0, b"1"]
    assert await redis.xlen(key_list[0]) == 1


# -- bounds: MAXLEN, TTL, expiry ----------------------------------------------------------------


async def test_appends_trim_to_maxlen_and_set_the_ttl(redis: aioredis.Redis, keys: Keys) -> None:
    writer = await _writer(redis, keys, maxlen=10, ttl_seconds=120)
    for i in range(500):
        writer.emit_tokens([str(i)])
        await writer.flush()
    assert writer.appends == 500
    length = await redis.xlen(keys.events(RUN))
    assert 10 <= length < 500 and length <= 10 + 100  # `~`: whole nodes of 100 entries are dropped
    assert 0 < await redis.ttl(keys.events(RUN)) <= 120
    assert 0 < await redis.ttl(keys.attempt(RUN)) <= 120
    with pytest.raises(EventsLost, match="trimmed"):
        await RedisEventReader(redis, keys, RUN).read(0, block_seconds=0)
    entries, cursor, _ = await RedisEventReader(redis, keys, RUN).read(499, block_seconds=0)
    assert (entries, cursor) == (["499"], 500)
    await writer.aclose()


async def test_take_over_sets_a_ttl_on_the_attempt(redis: aioredis.Redis, keys: Keys) -> None:
    assert await take_over(redis, keys, RUN, ttl_seconds=50) == 1
    assert 0 < await redis.ttl(keys.attempt(RUN)) <= 50
    assert await take_over(redis, keys, RUN) == 2


async def test_a_run_that_never_existed_is_gone_after_missing_seconds(
    redis: aioredis.Redis, keys: Keys
) -> None:
    reader = RedisEventReader(redis, keys, "no-such-run", missing_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(RunGone, match="no events were written"):
        await _read_all(reader)
    assert 0.4 < time.monotonic() - started < 2
    with pytest.raises(RunGone):
        await RedisEventReader(redis, keys, "no-such-run", missing_seconds=0).read(0, block_seconds=1)


async def test_a_run_that_starts_late_is_not_gone(redis: aioredis.Redis, keys: Keys) -> None:
    reader = asyncio.create_task(_read_all(RedisEventReader(redis, keys, RUN, missing_seconds=5)))
    await asyncio.sleep(0.3)
    async with await _writer(redis, keys) as writer:
        writer.emit_tokens(["late"])
        writer.emit(End())
    assert await reader == ["late", End()]


async def test_expired_events_are_gone(redis: aioredis.Redis, keys: Keys) -> None:
    writer = await _writer(redis, keys)
    writer.emit_tokens(["a", "b"])
    await writer.flush()
    reader = RedisEventReader(redis, keys, RUN, missing_seconds=60)
    assert await reader.read(0, block_seconds=1) == (["a", "b"], 2, False)
    await redis.delete(keys.events(RUN))  # as EXPIRE would
    started = time.monotonic()
    assert await reader.read(2, block_seconds=0.2) == ([], 2, False)
    with pytest.raises(RunGone, match="expired"):
        await reader.read(2, block_seconds=0.2)
    with pytest.raises(RunGone):  # a fresh reader resuming after event 2
        await RedisEventReader(redis, keys, RUN).read(2, block_seconds=5)
    assert time.monotonic() - started < 2
    writer.emit_tokens(["c"])
    with pytest.raises(RunGone):  # the writer does not start a log with a hole in it
        await writer.flush()
    assert await redis.exists(keys.events(RUN)) == 0


async def test_a_read_on_an_empty_run_returns_after_block_seconds(redis: aioredis.Redis, keys: Keys) -> None:
    reader = RedisEventReader(redis, keys, RUN)
    for block in [0.0, 0.2, 0.5]:
        started = time.monotonic()
        assert await reader.read(0, block_seconds=block) == ([], 0, False)
        assert block - 0.05 <= time.monotonic() - started < block + 0.5
    async with await _writer(redis, keys) as writer:
        writer.emit_tokens(["a"])
    started = time.monotonic()
    assert await reader.read(1, block_seconds=0.3) == ([], 1, False)
    assert 0.25 <= time.monotonic() - started < 0.8


async def test_a_long_block_is_clamped_below_the_socket_timeout(keys: Keys) -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=1)
    try:
        started = time.monotonic()
        assert await RedisEventReader(client, keys, RUN).read(0, block_seconds=600) == ([], 0, False)
        assert time.monotonic() - started < 1  # half the socket timeout, not a socket timeout
    finally:
        await client.aclose()


# -- Redis down -----------------------------------------------------------------------------------


@pytest.fixture
async def down() -> AsyncIterator[aioredis.Redis]:
    """A client for a loopback port nobody listens on (default retries, 1 s socket timeouts)."""
    client = aioredis.Redis(host="127.0.0.1", port=_free_port(), socket_timeout=1, socket_connect_timeout=1)
    yield client
    await client.aclose()


async def test_a_writer_fails_with_a_connection_error_when_redis_is_down(
    down: aioredis.Redis, keys: Keys
) -> None:
    # redis-py's default retries (10, backoff capped at 1 s) take ~4-5 s to give up on a refused port.
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(take_over(down, keys, RUN), 10)
    took = time.monotonic() - started
    writer = RedisEventWriter(down, keys, RUN, 1)
    writer.emit_tokens(["a"])
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(writer.flush(), 10)
    flushed = time.monotonic() - started
    print(f"\nagainst a closed port: take_over failed in {took:.2f} s, flush in {flushed:.2f} s")
    assert took < 8 and flushed < 8
    with pytest.raises(RedisConnectionError):  # the writer has stopped
        writer.emit(End())
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(writer.aclose(), 1)


async def test_a_reader_fails_with_a_connection_error_when_redis_is_down(
    down: aioredis.Redis, keys: Keys
) -> None:
    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(_read_all(RedisEventReader(down, keys, RUN)), 10)
    print(f"\nagainst a closed port: the reader failed in {time.monotonic() - started:.2f} s")
    assert time.monotonic() - started < 8


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def test_a_redis_that_never_answers_is_a_timeout_error_not_a_hang(silent_port: int, keys: Keys) -> None:
    client = aioredis.Redis(
        host="127.0.0.1",
        port=silent_port,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 1),
    )
    try:
        started = time.monotonic()
        writer = RedisEventWriter(client, keys, RUN, 1)
        writer.emit_tokens(["a"])
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(writer.flush(), 10)
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(RedisEventReader(client, keys, RUN).read(0, block_seconds=5), 10)
        assert time.monotonic() - started < 8
    finally:
        await client.aclose()

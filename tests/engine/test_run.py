"""A run's lifecycle on every path: the ordering invariant, storage, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

import pytest

from streamwise.engine.events import End, Error, Event, Metadata, Start, Token
from streamwise.engine.ports import ChatTurn
from streamwise.engine.run import COMPACT_EVERY, SHUTDOWN_MESSAGE, Run, RunRequest
from streamwise.engine.runs import RunManager, ShuttingDown
from streamwise.nodes.chains.conversation_chain import ConversationChain
from streamwise.nodes.memory.buffer_memory import BufferMemory
from tests.support.fake_model import FakeProbe, ScriptedFakeChatModel
from tests.support.memory_store import InMemoryMessageStore
from tests.support.waiting import until


def assert_invariant(events: Sequence[Event]) -> str:
    """Exactly one end, last; start before the first token; returns the joined tokens."""
    names = [event.event for event in events]
    assert names.count("end") == 1 and names[-1] == "end", names
    if "token" in names:
        assert "start" in names and names.index("start") < names.index("token"), names
    assert names.count("start") <= 1
    return "".join(event.data for event in events if isinstance(event, Token))


def chain(model: ScriptedFakeChatModel, memory: bool = False) -> ConversationChain:
    return ConversationChain(model=model, memory=BufferMemory() if memory else None, system_message="sys")


def request(chat_id: str = "chat-1", question: str = "hi") -> RunRequest:
    return RunRequest(chatflow_id="flow-1", question=question, chat_id=chat_id, session_id=chat_id)


async def wait_for_events(run: Run, count: int) -> None:
    async with asyncio.timeout(5):
        while len(run.local_log) < count:
            await run.local_log.wait_beyond(len(run.local_log), None)


async def run_to_end(run: Run) -> list[Event]:
    async with asyncio.timeout(10):
        await run.wait()
    return run.local_log.events


async def test_success_emits_start_tokens_metadata_end_and_stores_the_answer() -> None:
    store = InMemoryMessageStore()
    run = Run(request(), chain(ScriptedFakeChatModel(("Hel", "lo", "!"))), store)
    events = await run_to_end(run)
    assert [e.event for e in events] == ["start", "token", "token", "token", "metadata", "end"]
    assert events[0] == Start("Hel")
    assert assert_invariant(events) == "Hello!"
    metadata = events[-2]
    assert isinstance(metadata, Metadata)
    assert metadata.data == {"chatId": "chat-1", "chatMessageId": run.chat_message_id, "question": "hi"}
    [stored] = store.exchanges
    assert (stored.answer, stored.status, stored.api_message_id) == (
        "Hello!",
        "complete",
        run.chat_message_id,
    )


async def test_memory_adds_session_and_memory_type_to_metadata() -> None:
    run = Run(request(), chain(ScriptedFakeChatModel(("a",)), memory=True), InMemoryMessageStore())
    events = await run_to_end(run)
    metadata = next(e for e in events if isinstance(e, Metadata))
    assert metadata.data["sessionId"] == "chat-1"
    assert metadata.data["memoryType"] == "Buffer Memory"


async def test_model_error_before_first_token_is_error_then_end() -> None:
    store = InMemoryMessageStore()
    run = Run(request(), chain(ScriptedFakeChatModel(("a", "b"), fail_at=0)), store)
    events = await run_to_end(run)
    assert [e.event for e in events] == ["error", "end"]
    assert isinstance(events[0], Error) and "scripted failure" in events[0].data
    assert store.exchanges[0].status == "error"


async def test_model_error_after_tokens_keeps_the_partial_answer() -> None:
    store = InMemoryMessageStore()
    run = Run(request(), chain(ScriptedFakeChatModel(("a", "b", "c"), fail_at=2)), store)
    events = await run_to_end(run)
    assert [e.event for e in events] == ["start", "token", "token", "error", "end"]
    assert (store.exchanges[0].answer, store.exchanges[0].status) == ("ab", "error")


async def test_abort_stops_the_model_and_stores_the_partial_answer() -> None:
    probe = FakeProbe()
    store = InMemoryMessageStore()
    model = ScriptedFakeChatModel(tuple(f"t{i} " for i in range(1000)), delay=0.005, probe=probe)
    run = Run(request(), chain(model), store)
    run.start()
    await wait_for_events(run, 5)
    assert run.cancel("abort")
    events = await run_to_end(run)
    emitted_at_abort = probe.emitted
    await asyncio.sleep(0.05)
    assert probe.emitted == emitted_at_abort and probe.cancelled == 1
    assert [e.event for e in events][-2:] == ["abort", "end"]
    text = assert_invariant(events)
    assert store.exchanges[0].status == "aborted"
    assert store.exchanges[0].answer == text and len(text) > 0


async def test_shutdown_sends_error_then_end() -> None:
    store = InMemoryMessageStore()
    manager = RunManager(store)
    model = ScriptedFakeChatModel(tuple("abcdefghij" * 50), delay=0.01)
    run = manager.start(request(), chain(model))
    await wait_for_events(run, 3)
    await manager.drain(timeout=5)
    events = run.local_log.events
    assert events[-2:] == [Error(SHUTDOWN_MESSAGE), End()]
    assert store.exchanges[0].status == "error" and store.exchanges[0].answer
    with pytest.raises(ShuttingDown):
        manager.start(request(), chain(model))


async def test_storage_survives_a_second_cancel_during_save() -> None:
    store = InMemoryMessageStore(save_delay=0.1)
    run = Run(request(), chain(ScriptedFakeChatModel(("x",) * 100, delay=0.01)), store)
    run.start()
    await asyncio.sleep(0.05)
    run.cancel("abort")
    await asyncio.sleep(0.02)
    run.start().cancel()  # a shutdown arriving mid-save
    events = await run_to_end(run)
    assert events[-1] == End()
    assert len(store.exchanges) == 1


async def test_failed_storage_turns_success_into_error() -> None:
    run = Run(request(), chain(ScriptedFakeChatModel(("a",))), InMemoryMessageStore(fail=True))
    events = await run_to_end(run)
    assert [e.event for e in events] == ["start", "token", "error", "end"]
    assert isinstance(events[2], Error) and "could not be stored" in events[2].data


async def test_cancel_after_the_end_is_a_no_op() -> None:
    run = Run(request(), chain(ScriptedFakeChatModel(("a",))), InMemoryMessageStore())
    await run_to_end(run)
    assert run.cancel("abort") is False


async def test_two_runs_on_the_same_chat_never_mix_tokens() -> None:
    manager = RunManager(InMemoryMessageStore())
    a = manager.start(request("same"), chain(ScriptedFakeChatModel(tuple("A" * 200), delay=0.0005)))
    b = manager.start(request("same"), chain(ScriptedFakeChatModel(tuple("B" * 200), delay=0.0005)))
    assert manager.get(a.id) is a and manager.get(b.id) is b and a.id != b.id
    assert assert_invariant(await run_to_end(a)) == "A" * 200
    assert assert_invariant(await run_to_end(b)) == "B" * 200
    await asyncio.sleep(0)  # the done-callbacks run
    # Ended, no longer counted as running, still findable for a client that resumes.
    assert manager.get(a.id) is a and len(manager) == 0 and manager.pacer.active == 0


async def test_abort_by_chat_stops_every_run_of_that_chat_only() -> None:
    manager = RunManager(InMemoryMessageStore())
    slow = ScriptedFakeChatModel(tuple("x" * 1000), delay=0.01)
    a1, a2 = manager.start(request("a"), chain(slow)), manager.start(request("a"), chain(slow))
    b = manager.start(request("b"), chain(ScriptedFakeChatModel(tuple("y" * 20), delay=0.01)))
    await asyncio.sleep(0.05)
    assert manager.cancel_chat("flow-1", "a") == 2
    for run in (a1, a2):
        assert [e.event for e in await run_to_end(run)][-2:] == ["abort", "end"]
    assert [e.event for e in await run_to_end(b)][-2:] == ["metadata", "end"]


async def test_memory_sees_earlier_turns_and_seed_history_only_when_nothing_is_stored() -> None:
    store = InMemoryMessageStore()
    model = ScriptedFakeChatModel((), echo=True)
    seeded = RunRequest("flow-1", "second", "c", "c", seed_history=(ChatTurn("user", "seeded"),))
    first = await run_to_end(Run(seeded, chain(model, memory=True), store))
    assert "user: seeded" in assert_invariant(first)
    again = RunRequest("flow-1", "third", "c", "c", seed_history=(ChatTurn("user", "ignored"),))
    text = assert_invariant(await run_to_end(Run(again, chain(model, memory=True), store)))
    assert "user: second" in text and "ignored" not in text


async def test_a_model_that_cannot_stream_still_yields_its_answer_as_a_token() -> None:
    run = Run(
        request(), chain(ScriptedFakeChatModel(("whole", " answer"), streaming=False)), InMemoryMessageStore()
    )
    events = await run_to_end(run)
    assert [e.event for e in events] == ["start", "token", "metadata", "end"]
    assert assert_invariant(events) == "whole answer"


async def test_the_question_is_stored_as_the_run_starts_and_the_answer_replaces_it_at_the_end() -> None:
    store = InMemoryMessageStore()
    model = ScriptedFakeChatModel(("slow",) * 20, delay=0.01)
    run = Run(request(question="is it stored?"), chain(model), store)
    run.start()
    await wait_for_events(run, 2)
    await until(lambda: store.by_id)  # written once the first token has gone out
    [running] = store.by_id.values()
    assert (running.question, running.status, running.answer) == ("is it stored?", "running", "")
    assert store.exchanges == []  # not finished: left out of memory
    await run_to_end(run)
    [done] = store.by_id.values()
    assert (done.status, done.answer) == ("complete", "slow" * 20)


async def test_partial_gives_the_answer_so_far_only_when_it_grew() -> None:
    store = InMemoryMessageStore()
    run = Run(request(), chain(ScriptedFakeChatModel(("a", "b", "c"), delay=0.05)), store)
    run.start()
    await wait_for_events(run, 2)  # start and the first token
    await until(lambda: run.partial() is not None)  # once the question is stored
    assert run._saved_tokens == 1
    assert run.partial() is None  # nothing new since
    await run_to_end(run)
    assert run.partial() is None  # ended: the final write has it


async def test_the_checkpointer_saves_growing_answers_in_batches_while_tokens_flow() -> None:
    store = InMemoryMessageStore()
    manager = RunManager(store, checkpoint_seconds=0.05)
    slow = ScriptedFakeChatModel(tuple(f"w{i} " for i in range(40)), delay=0.01)
    runs = [manager.start(request(f"chat-{n}"), chain(slow)) for n in range(3)]
    await asyncio.sleep(0.2)
    mid_run = {message_id: exchange.answer for message_id, exchange in store.by_id.items()}
    assert all(answer.startswith("w0 w1 ") for answer in mid_run.values()), mid_run
    for run in runs:
        await run_to_end(run)
    assert store.partial_saves and max(len(batch) for batch in store.partial_saves) == 3
    assert all(exchange.status == "complete" for exchange in store.exchanges)
    await manager.close()


async def test_a_question_that_could_not_be_stored_is_written_with_the_answer() -> None:
    store = InMemoryMessageStore(fail_begin=True)
    run = Run(request(question="q?"), chain(ScriptedFakeChatModel(("a",))), store)
    events = await run_to_end(run)
    assert [e.event for e in events][-2:] == ["metadata", "end"]
    assert [(e.question, e.answer, e.status) for e in store.exchanges] == [("q?", "a", "complete")]


async def test_a_run_cancelled_before_its_first_step_still_aborts_and_ends() -> None:
    store = InMemoryMessageStore()
    probe = FakeProbe()
    manager = RunManager(store)
    run = manager.start(request(), chain(ScriptedFakeChatModel(("never",), probe=probe)))
    assert run.cancel("abort")  # the task has not run yet
    events = await run_to_end(run)
    assert [e.event for e in events] == ["abort", "end"]
    assert probe.started == 0 and store.exchanges[0].status == "aborted"


async def test_an_unexpected_failure_is_reported_without_its_text() -> None:
    class Broken(ScriptedFakeChatModel):
        async def stream(self, messages: Sequence[ChatTurn]) -> AsyncGenerator[list[str], None]:
            raise KeyError("/srv/secret/path")
            yield []

    run = Run(request(), chain(Broken(())), InMemoryMessageStore())
    events = await run_to_end(run)
    assert isinstance(events[0], Error) and run.id in events[0].data
    assert "secret" not in events[0].data and "KeyError" not in events[0].data
    assert run.outcome is not None and type(run.outcome.failure).__name__ == "InternalError"


async def test_a_long_answer_is_held_compactly_and_stored_whole() -> None:
    store = InMemoryMessageStore()
    chunks = tuple(f"w{i} " for i in range(20_000))
    run = Run(request(), chain(ScriptedFakeChatModel(chunks)), store)
    await run_to_end(run)
    assert len(run.parts) <= COMPACT_EVERY + 20_000 // COMPACT_EVERY and run.tokens == 20_000
    assert store.exchanges[0].answer == "".join(chunks)

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from streamwise.engine.ports import ChatTurn, MessageStore
from streamwise.store import Database, MessageRepository
from tests.store.factories import make_exchange, put_message

FLOW = "flow-a"
OTHER_FLOW = "flow-b"
JS_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_the_repository_is_the_engines_message_store(db: Database) -> None:
    store: MessageStore = MessageRepository(db)
    assert store is not None


async def test_an_exchange_is_stored_as_a_question_row_and_an_answer_row(messages: MessageRepository) -> None:
    saved = make_exchange(
        FLOW,
        "What is 2+2?",
        "4",
        session_id="s1",
        chat_id="c1",
        memory_type="Buffer Memory",
        chat_type="INTERNAL",
    )

    await messages.save_exchange(saved)

    question, answer = await messages.list(FLOW)
    assert (question.id, question.role, question.content) == (
        saved.user_message_id,
        "userMessage",
        "What is 2+2?",
    )
    assert (answer.id, answer.role, answer.content) == (saved.api_message_id, "apiMessage", "4")
    for row in (question, answer):
        assert (row.chatflowid, row.chatId, row.sessionId) == (FLOW, "c1", "s1")
        assert (row.memoryType, row.chatType, row.runId) == ("Buffer Memory", "INTERNAL", saved.run_id)
        assert row.status == "complete"
        assert row.createdDate.tzinfo is UTC
    assert answer.createdDate > question.createdDate


async def test_status_of_an_unfinished_answer_is_kept_on_the_answer_only(messages: MessageRepository) -> None:
    aborted = make_exchange(FLOW, "Tell me a story", "Once upon", status="aborted")
    failed = make_exchange(FLOW, "And another", "", status="error")

    await messages.save_exchange(aborted)
    await messages.save_exchange(failed)

    rows = await messages.list(FLOW)
    assert [(row.role, row.status, row.content) for row in rows] == [
        ("userMessage", "complete", "Tell me a story"),
        ("apiMessage", "aborted", "Once upon"),
        ("userMessage", "complete", "And another"),
        ("apiMessage", "error", ""),
    ]
    assert [row.id for row in await messages.list(FLOW, run_id=failed.run_id)] == [
        failed.user_message_id,
        failed.api_message_id,
    ]


async def test_sources_and_tools_round_trip_as_json(messages: MessageRepository) -> None:
    documents = [{"pageContent": "Paris is in France ☀", "metadata": {"source": "a.txt", "page": 1}}]
    tools = [{"tool": "calculator", "toolInput": {"input": "2+2"}, "toolOutput": "4"}]

    await messages.save_exchange(make_exchange(FLOW, source_documents=documents, used_tools=tools))

    question, answer = await messages.list(FLOW)
    assert question.sourceDocuments is None and question.usedTools is None
    assert answer.sourceDocuments is not None and json.loads(answer.sourceDocuments) == documents
    body = answer.to_json()
    assert body["sourceDocuments"] == documents
    assert body["usedTools"] == tools
    assert JS_ISO.match(body["createdDate"])
    assert question.to_json()["sourceDocuments"] is None


async def test_empty_sources_are_not_stored(messages: MessageRepository) -> None:
    await messages.save_exchange(make_exchange(FLOW, source_documents=[], used_tools=[]))

    _, answer = await messages.list(FLOW)
    assert answer.sourceDocuments is None and answer.usedTools is None


async def test_json_of_other_columns_is_parsed_and_bad_json_passes_through(
    db: Database, messages: MessageRepository
) -> None:
    await put_message(
        db,
        FLOW,
        datetime(2024, 1, 1, tzinfo=UTC),
        agentReasoning='[{"agentName":"a"}]',
        fileUploads="not json",
        followUpPrompts='["why?"]',
    )

    (row,) = await messages.list(FLOW)
    body = row.to_json()

    assert body["agentReasoning"] == [{"agentName": "a"}]
    assert body["fileUploads"] == "not json"
    assert body["followUpPrompts"] == '["why?"]'
    assert body["createdDate"] == "2024-01-01T00:00:00.000Z"
    assert {"status", "runId", "chatType", "leadEmail"} <= set(body)


async def test_history_returns_earlier_turns_oldest_first(messages: MessageRepository) -> None:
    for number in range(1, 6):
        await messages.save_exchange(make_exchange(FLOW, f"q{number}", f"a{number}", session_id="s"))

    turns = await messages.history(FLOW, "s")

    expected = []
    for number in range(1, 6):
        expected += [ChatTurn("user", f"q{number}"), ChatTurn("assistant", f"a{number}")]
    assert turns == expected
    assert await messages.history(FLOW, "s", limit=3) == expected[-3:]


async def test_history_is_kept_apart_per_session_and_per_chatflow(messages: MessageRepository) -> None:
    await messages.save_exchange(make_exchange(FLOW, "mine", "yes", session_id="s1"))
    await messages.save_exchange(make_exchange(FLOW, "theirs", "no", session_id="s2"))
    await messages.save_exchange(make_exchange(OTHER_FLOW, "elsewhere", "maybe", session_id="s1"))

    assert await messages.history(FLOW, "s1") == [ChatTurn("user", "mine"), ChatTurn("assistant", "yes")]
    assert await messages.history(FLOW, "s2") == [ChatTurn("user", "theirs"), ChatTurn("assistant", "no")]
    assert await messages.history(OTHER_FLOW, "s1") == [
        ChatTurn("user", "elsewhere"),
        ChatTurn("assistant", "maybe"),
    ]
    assert await messages.history(FLOW, "nobody") == []


async def test_history_leaves_out_empty_answers(messages: MessageRepository) -> None:
    await messages.save_exchange(make_exchange(FLOW, "first", "", status="error"))
    await messages.save_exchange(make_exchange(FLOW, "second", "partial", status="aborted"))

    assert await messages.history(FLOW, "session") == [
        ChatTurn("user", "first"),
        ChatTurn("user", "second"),
        ChatTurn("assistant", "partial"),
    ]


async def test_questions_sort_before_their_answers_even_in_a_burst(messages: MessageRepository) -> None:
    await asyncio.gather(*(messages.save_exchange(make_exchange(FLOW, f"q{n}", f"a{n}")) for n in range(30)))

    rows = await messages.list(FLOW)

    assert [row.role for row in rows] == ["userMessage", "apiMessage"] * 30
    assert [row.content[1:] for row in rows[0::2]] == [row.content[1:] for row in rows[1::2]]
    assert len({row.createdDate for row in rows}) == 60


async def test_concurrent_saves_are_all_stored(messages: MessageRepository) -> None:
    exchanges = [make_exchange(FLOW, f"q{n}", f"a{n}", session_id=f"s{n % 4}") for n in range(20)]

    await asyncio.gather(*(messages.save_exchange(item) for item in exchanges))

    stored = {row.id for row in await messages.list(FLOW)}
    assert stored == {item.user_message_id for item in exchanges} | {
        item.api_message_id for item in exchanges
    }


async def _three_conversations(messages: MessageRepository) -> None:
    await messages.save_exchange(
        make_exchange(
            FLOW, "a", "A", session_id="s1", chat_id="c1", chat_type="EXTERNAL", memory_type="Buffer"
        )
    )
    await messages.save_exchange(
        make_exchange(FLOW, "b", "B", session_id="s2", chat_id="c2", chat_type="INTERNAL")
    )
    await messages.save_exchange(
        make_exchange(FLOW, "c", "C", session_id="s1", chat_id="c3", chat_type="EXTERNAL")
    )
    await messages.save_exchange(make_exchange(OTHER_FLOW, "d", "D", session_id="s1", chat_id="c1"))


async def test_list_filters_by_chat_session_memory_type_and_message(messages: MessageRepository) -> None:
    await _three_conversations(messages)

    async def contents(**filters: Any) -> list[str]:
        return [row.content for row in await messages.list(FLOW, **filters)]

    assert await contents() == ["a", "A", "b", "B", "c", "C"]
    assert await contents(chat_id="c1") == ["a", "A"]
    assert await contents(session_id="s1") == ["a", "A", "c", "C"]
    assert await contents(memory_type="Buffer") == ["a", "A"]
    assert await contents(chat_type="INTERNAL") == ["b", "B"]
    assert await contents(chat_type=["INTERNAL", "EXTERNAL"]) == ["a", "A", "b", "B", "c", "C"]
    assert await contents(session_id="s1", chat_id="c3") == ["c", "C"]
    assert await contents(order="DESC") == ["C", "c", "B", "b", "A", "a"]
    assert await contents(order="desc", chat_id="c2") == ["B", "b"]
    first = (await messages.list(FLOW))[0]
    assert await contents(message_id=first.id) == ["a"]
    assert await contents(chat_id="nobody") == []


async def test_list_refuses_an_unknown_order(messages: MessageRepository) -> None:
    with pytest.raises(ValueError, match="order"):
        await messages.list(FLOW, order="sideways")


async def _dated_rows(db: Database) -> dict[str, str]:
    moments = {
        "day_before_late": datetime(2024, 1, 30, 23, 59, 59, 999_000, tzinfo=UTC),
        "midnight": datetime(2024, 1, 31, 0, 0, tzinfo=UTC),
        "evening": datetime(2024, 1, 31, 18, 0, tzinfo=UTC),
        "last_ms": datetime(2024, 1, 31, 23, 59, 59, 999_000, tzinfo=UTC),
        "next_day": datetime(2024, 2, 1, 0, 0, tzinfo=UTC),
    }
    return {await put_message(db, FLOW, moment, content=name): name for name, moment in moments.items()}


async def test_list_dates_are_inclusive_and_a_bare_date_is_the_whole_day(
    db: Database, messages: MessageRepository
) -> None:
    await _dated_rows(db)

    async def contents(start: str | None, end: str | None) -> list[str]:
        return [row.content for row in await messages.list(FLOW, start_date=start, end_date=end)]

    assert await contents("2024-01-31", "2024-01-31") == ["midnight", "evening", "last_ms"]
    assert await contents("2024-01-31", None) == ["midnight", "evening", "last_ms", "next_day"]
    assert await contents(None, "2024-01-30") == ["day_before_late"]
    assert await contents("2024-01-31T18:00:00.000Z", None) == ["evening", "last_ms", "next_day"]
    assert await contents("2024-01-31T19:00:00+01:00", "2024-01-31T18:00:00Z") == ["evening"]


async def test_list_refuses_an_unreadable_date(messages: MessageRepository) -> None:
    with pytest.raises(ValueError, match="endDate"):
        await messages.list(FLOW, end_date="soon")


async def test_delete_with_filters_removes_only_matches_and_counts_them(messages: MessageRepository) -> None:
    await _three_conversations(messages)

    assert await messages.delete(FLOW, chat_id="nobody") == 0
    assert await messages.delete(FLOW, chat_id="c1") == 2
    assert await messages.delete(FLOW, chat_type=["INTERNAL"]) == 2
    assert [row.content for row in await messages.list(FLOW)] == ["c", "C"]
    assert await messages.delete(FLOW, session_id="s1", memory_type="Buffer") == 0
    assert await messages.delete(FLOW) == 2
    assert await messages.list(FLOW) == []
    assert [row.content for row in await messages.list(OTHER_FLOW)] == ["d", "D"]


async def test_delete_by_dates_widens_bare_dates_to_whole_days(
    db: Database, messages: MessageRepository
) -> None:
    await _dated_rows(db)

    assert await messages.delete(FLOW, start_date="2024-01-31", end_date="2024-01-31") == 3

    assert [row.content for row in await messages.list(FLOW)] == ["day_before_late", "next_day"]

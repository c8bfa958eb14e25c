from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, timedelta

import pytest

from streamwise.store import ChatflowRecord, ChatflowRepository, MessageRepository
from streamwise.store.dates import utc_now
from tests.store.factories import make_exchange

FLOW = '{"nodes":[],"edges":[]}'
JS_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def test_a_created_chatflow_reads_back_with_every_field(chatflows: ChatflowRepository) -> None:
    before = utc_now()
    created = await chatflows.create(
        {
            "name": "Support bot",
            "flowData": FLOW,
            "deployed": True,
            "isPublic": False,
            "apikeyid": "key-1",
            "chatbotConfig": '{"welcomeMessage":"hi"}',
            "apiConfig": "{}",
            "analytic": "{}",
            "speechToText": "{}",
            "followUpPrompts": "{}",
            "category": "support;demo",
            "type": "MULTIAGENT",
        }
    )

    fetched = await chatflows.get(created.id)

    assert fetched == created
    assert uuid.UUID(created.id)
    assert (created.name, created.flowData, created.deployed, created.isPublic) == (
        "Support bot",
        FLOW,
        True,
        False,
    )
    assert (created.apikeyid, created.category, created.type) == ("key-1", "support;demo", "MULTIAGENT")
    assert created.createdDate.tzinfo is UTC
    assert before <= created.createdDate <= utc_now()
    assert created.updatedDate == created.createdDate


async def test_optional_fields_default_to_null_and_type_to_chatflow(chatflows: ChatflowRepository) -> None:
    created = await chatflows.create({"id": "flow-1", "name": "Plain", "flowData": FLOW})

    assert created.id == "flow-1"
    assert created.type == "CHATFLOW"
    assert created.deployed is None and created.isPublic is None and created.apikeyid is None
    assert await chatflows.get("flow-1") == created


async def test_json_has_flowise_keys_and_javascript_dates(chatflows: ChatflowRepository) -> None:
    created = await chatflows.create({"name": "Plain", "flowData": FLOW})

    body = created.to_json()

    assert list(body) == [
        "id",
        "name",
        "flowData",
        "deployed",
        "isPublic",
        "apikeyid",
        "chatbotConfig",
        "apiConfig",
        "analytic",
        "speechToText",
        "followUpPrompts",
        "category",
        "type",
        "createdDate",
        "updatedDate",
    ]
    assert JS_ISO.match(body["createdDate"]) and JS_ISO.match(body["updatedDate"])
    assert body["flowData"] == FLOW and body["deployed"] is None


async def test_missing_unknown_or_mistyped_fields_are_refused(chatflows: ChatflowRepository) -> None:
    with pytest.raises(ValueError, match="flowData"):
        await chatflows.create({"name": "no graph"})
    with pytest.raises(ValueError, match="colour"):
        await chatflows.create({"name": "x", "flowData": FLOW, "colour": "red"})
    with pytest.raises(ValueError, match="deployed"):
        await chatflows.create({"name": "x", "flowData": FLOW, "deployed": "yes"})
    with pytest.raises(ValueError, match="flowData"):
        await chatflows.create({"name": "x", "flowData": {"nodes": []}})

    assert await chatflows.count() == 0


async def test_list_is_oldest_first_and_can_filter_by_type(chatflows: ChatflowRepository) -> None:
    first = await chatflows.create({"name": "first", "flowData": FLOW})
    second = await chatflows.create({"name": "second", "flowData": FLOW, "type": "AGENTFLOW"})
    third = await chatflows.create({"name": "third", "flowData": FLOW})

    assert [flow.id for flow in await chatflows.list()] == [first.id, second.id, third.id]
    assert [flow.id for flow in await chatflows.list(flow_type="AGENTFLOW")] == [second.id]
    assert await chatflows.count() == 3


async def test_update_changes_only_the_given_fields_and_the_update_date(
    chatflows: ChatflowRepository,
) -> None:
    created = await chatflows.create({"name": "before", "flowData": FLOW, "deployed": False, "category": "a"})
    await asyncio.sleep(0.005)

    updated = await chatflows.update(created.id, {"name": "after", "deployed": True, "category": None})

    assert isinstance(updated, ChatflowRecord)
    assert (updated.name, updated.deployed, updated.category, updated.flowData) == ("after", True, None, FLOW)
    assert updated.createdDate == created.createdDate
    assert updated.updatedDate - created.updatedDate >= timedelta(milliseconds=1)
    assert await chatflows.get(created.id) == updated


async def test_updating_a_missing_chatflow_finds_nothing(chatflows: ChatflowRepository) -> None:
    assert await chatflows.update(str(uuid.uuid4()), {"name": "ghost"}) is None


async def test_update_refuses_the_id_and_the_dates(chatflows: ChatflowRepository) -> None:
    created = await chatflows.create({"name": "x", "flowData": FLOW})

    for field in ("id", "createdDate", "updatedDate"):
        with pytest.raises(ValueError, match=field):
            await chatflows.update(created.id, {field: "2024-01-01T00:00:00.000Z"})

    assert await chatflows.get(created.id) == created


async def test_delete_removes_the_chatflow_and_only_its_messages(
    chatflows: ChatflowRepository, messages: MessageRepository
) -> None:
    doomed = await chatflows.create({"name": "doomed", "flowData": FLOW})
    kept = await chatflows.create({"name": "kept", "flowData": FLOW})
    await messages.save_exchange(make_exchange(doomed.id))
    await messages.save_exchange(make_exchange(kept.id))

    assert await chatflows.delete(doomed.id) is True

    assert await chatflows.get(doomed.id) is None
    assert await messages.list(doomed.id) == []
    assert len(await messages.list(kept.id)) == 2
    assert [flow.id for flow in await chatflows.list()] == [kept.id]


async def test_deleting_a_missing_chatflow_reports_false(chatflows: ChatflowRepository) -> None:
    assert await chatflows.delete(str(uuid.uuid4())) is False

"""currentDateTime: Flowise's keys, the zone the node names, and refusing a zone that does not exist."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from streamwise.engine.ports import ChatTurn, SessionContext
from streamwise.engine.tools import Tool, ToolContext
from streamwise.errors import NodeConfigError
from streamwise.nodes.services import NodeServices
from streamwise.nodes.tools.current_datetime import SPEC, CurrentDateTime


class _NoHistory:
    async def history(self, chatflow_id: str, session_id: str, *, limit: int | None = None) -> list[ChatTurn]:
        return []


CONTEXT = ToolContext(session=SessionContext("flow", "chat", "session", _NoHistory()))
MOMENT = datetime(2024, 3, 9, 23, 30, 15, 250_000, tzinfo=UTC)  # a Saturday, late evening in UTC


def fixed(tool: object) -> CurrentDateTime:
    assert isinstance(tool, CurrentDateTime)
    tool.now = lambda: MOMENT
    return tool


async def test_the_answer_has_flowise_keys() -> None:
    tool = fixed(SPEC.build("currentDateTime_0", {"timezone": "UTC"}, NodeServices(env={})))
    assert isinstance(tool, Tool)
    assert tool.schema.name == "current_date_time"
    assert tool.schema.parameters["properties"] == {}
    assert tool.side_effects is False
    answer = json.loads((await tool.call({}, CONTEXT)).output)
    assert answer == {
        "date": "2024-03-09",
        "time": "23:30:15",
        "day": "Saturday",
        "timezone": "UTC",
        "timezoneOffset": "+00:00",
        "iso8601": "2024-03-09T23:30:15.250Z",
        "unix_timestamp": int(MOMENT.timestamp()),
    }


async def test_the_named_zone_gives_date_time_and_day_there() -> None:
    tool = fixed(SPEC.build("currentDateTime_0", {"timezone": "Asia/Tokyo"}, NodeServices(env={})))
    answer = json.loads((await tool.call({}, CONTEXT)).output)
    assert (answer["date"], answer["time"], answer["day"]) == ("2024-03-10", "08:30:15", "Sunday")
    assert (answer["timezone"], answer["timezoneOffset"]) == ("Asia/Tokyo", "+09:00")
    assert answer["iso8601"] == "2024-03-09T23:30:15.250Z"  # always UTC, as in Flowise


async def test_negative_and_half_hour_offsets() -> None:
    new_york = fixed(SPEC.build("n", {"timezone": "America/New_York"}, NodeServices(env={})))
    assert json.loads((await new_york.call({}, CONTEXT)).output)["timezoneOffset"] == "-05:00"
    kolkata = fixed(SPEC.build("k", {"timezone": "Asia/Kolkata"}, NodeServices(env={})))
    assert json.loads((await kolkata.call({}, CONTEXT)).output)["timezoneOffset"] == "+05:30"


def test_without_a_timezone_the_servers_zone_is_used() -> None:
    tool = SPEC.build("currentDateTime_0", {}, NodeServices(env={"TZ": "Europe/Paris"}))
    assert isinstance(tool, CurrentDateTime)
    assert tool.zone == ZoneInfo("Europe/Paris")
    assert tool.answer()["timezone"] == "Europe/Paris"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "Not a zone"])
def test_an_unknown_zone_is_refused_when_the_flow_is_saved(zone: str) -> None:
    with pytest.raises(NodeConfigError, match="currentDateTime_0"):
        SPEC.build("currentDateTime_0", {"timezone": zone}, NodeServices(env={}))

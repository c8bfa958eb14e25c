"""currentDateTime: tells the model today's day, date and time, which it cannot know by itself.

Flowise's node (version 1.0) has no inputs: its tool `current_date_time` takes no arguments and
answers a JSON object with `date`, `time`, `day`, `timezone`, `timezoneOffset`, `iso8601` (UTC) and
`unix_timestamp`, in the server's own time zone. The same keys come back here. Streamwise adds one
optional input, `timezone` (an IANA name such as "Europe/Paris"), for a flow whose users live
elsewhere than its server; an unknown name is refused when the flow is saved. Unlike Flowise, `date`
is the date in that zone (Flowise takes it from the UTC time), so date, time and day always agree.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamwise.engine.tools import ToolContext, ToolResult, ToolSchema
from streamwise.errors import NodeConfigError
from streamwise.nodes import inputs
from streamwise.nodes.services import NodeServices
from streamwise.nodes.spec import NodeSpec

LABEL = "CurrentDateTime"
NAME = "current_date_time"
DESCRIPTION = "Useful to get current day, date and time."
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _zone(name: str, node_id: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise NodeConfigError(
            f"Node {node_id}: input 'timezone' is not a known time zone name, got {name!r}", node_id
        ) from None


def _local_zone_name(env: Mapping[str, str]) -> str | None:
    """The IANA name of the server's zone, when it can be told (TZ, or /etc/localtime's link)."""
    candidates = [env.get("TZ", "").lstrip(":")]
    try:
        link = os.readlink("/etc/localtime")
    except OSError:
        link = ""
    if "zoneinfo/" in link:
        candidates.append(link.split("zoneinfo/", 1)[1])
    for candidate in candidates:
        try:
            if candidate:
                ZoneInfo(candidate)
                return candidate
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return None


def _offset(moment: datetime) -> str:
    minutes = int((moment.utcoffset() or timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class CurrentDateTime:
    """The tool; `now` gives the current UTC time (a parameter so that tests can fix the clock)."""

    side_effects = False

    def __init__(
        self,
        zone: tzinfo | None,
        zone_name: str | None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.zone = zone  # None: the server's local zone
        self.zone_name = zone_name
        self.now = now

    @property
    def schema(self) -> ToolSchema:
        return ToolSchema(name=NAME, description=DESCRIPTION)

    def answer(self) -> dict[str, Any]:
        utc = self.now().astimezone(UTC)
        local = utc.astimezone(self.zone)
        return {
            "date": local.strftime("%Y-%m-%d"),
            "time": local.strftime("%H:%M:%S"),
            "day": _DAYS[local.weekday()],
            "timezone": self.zone_name or local.tzname() or "UTC",
            "timezoneOffset": _offset(local),
            "iso8601": utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z",
            "unix_timestamp": int(utc.timestamp()),
        }

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        return ToolResult(json.dumps(self.answer()))


def build(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> CurrentDateTime:
    name = inputs.text(inputs_, "timezone")
    if name:
        return CurrentDateTime(_zone(name.strip(), node_id), name.strip())
    local = _local_zone_name(services.env)
    return CurrentDateTime(ZoneInfo(local) if local else None, local)


SPEC = NodeSpec(name="currentDateTime", label=LABEL, category="Tools", build=build, honoured=("timezone",))

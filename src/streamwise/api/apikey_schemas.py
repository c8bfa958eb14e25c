"""The bodies of /api/v1/apikey as pydantic models, for the OpenAPI document only (what
`streamwise.api.apikeys` reads and answers)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from streamwise.api.apikeys import MAX_NAME_CHARS
from streamwise.api.schemas import Open, Timestamp

KeyName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=r"[^ \t\r\n]")]


class ApiKeyName(Open):
    """What POST and PUT /api/v1/apikey read."""

    keyName: KeyName = Field(description="What the key is for.", examples=["website widget"])


class BoundChatflow(BaseModel):
    flowName: str
    category: str
    updatedDate: Timestamp


class ApiKeyEntry(BaseModel):
    """One key of the list every /api/v1/apikey route answers."""

    id: str
    keyName: str
    apiKey: str = Field(
        description="`sw_<lookup>_…`; in full only in the answer to the POST that created it.",
        examples=["sw_3f9a0c1b2d4e_…"],
    )
    createdAt: Timestamp
    chatFlows: list[BoundChatflow] = Field(description="The chatflows bound to the key.")

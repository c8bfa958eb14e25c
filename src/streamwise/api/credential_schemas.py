"""The bodies of /api/v1/credentials as pydantic models, for the OpenAPI document only.

They restate what `streamwise.api.credentials` reads and what `CredentialRecord.to_json` sends, as
`streamwise.api.schemas` does for the other routes: a schema allows nothing the reader refuses.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from streamwise.api.schemas import Absent, Open, Timestamp

# The readers' bounds, shared with them.
CREDENTIAL_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{0,35}"
CREDENTIAL_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
MAX_NAME_CHARS = 200
MAX_FIELDS = 100
MAX_FIELD_NAME_CHARS = 100
MAX_VALUE_CHARS = 65_536

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Kind = Annotated[str, Field(pattern=f"^{CREDENTIAL_NAME}$", examples=["openAIApi"])]
FieldName = Annotated[str, Field(min_length=1, max_length=MAX_FIELD_NAME_CHARS)]
FieldValue = Annotated[str, Field(max_length=MAX_VALUE_CHARS)]
PlainData = Annotated[
    dict[FieldName, FieldValue | None],
    Field(
        max_length=MAX_FIELDS,
        description="The credential's fields, as text; stored encrypted and never sent back. "
        "A null field is left out.",
        examples=[{"openAIApiKey": "sk-..."}],
    ),
]


class CredentialCreate(Open):
    """What POST /api/v1/credentials reads."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "OpenAI", "credentialName": "openAIApi", "plainDataObj": {"openAIApiKey": "sk-..."}}
            ]
        }
    )

    id: Annotated[str, Field(pattern=f"^{CREDENTIAL_ID}$")] | Literal[""] | None = Field(
        None,
        description="Chosen id (such as the one a Flowise export's nodes name); default: a new UUID.",
    )
    name: Name
    credentialName: Kind = Field(description="The kind of credential, as Flowise names it: `openAIApi`.")
    plainDataObj: PlainData | None = None


class CredentialChanges(Open):
    """What PUT /api/v1/credentials/{id} reads; a field left out or null is kept."""

    name: Name | None = None
    credentialName: Kind | None = None
    plainDataObj: PlainData | None = Field(
        None, description="Merged into the stored fields, as in Flowise; a null field is removed."
    )


class Credential(BaseModel):
    """A credential as every route answers it: never its data, plain or encrypted."""

    id: str
    name: str
    credentialName: str
    createdDate: Timestamp
    updatedDate: Timestamp


class CredentialQuery(BaseModel):
    """The filter of GET /api/v1/credentials: not a body, its field documents the query."""

    credentialName: list[str] | Absent = Field(
        None, description="Only credentials of these kinds; may be given more than once."
    )

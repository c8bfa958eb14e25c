"""What an API node hands a worker: one run, as the job stream's `payload` (JSON).

It holds everything the worker needs to run the prediction as the API node would have, and nothing
it could look up itself (the chatflow is read from the database by id, so a chatflow saved after the
dispatch is the one that runs, as it would in-process). The message ids are chosen by the API node,
so that every attempt at the run (after a take-over) writes the same two rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamwise.engine.ports import ChatTurn
from streamwise.engine.run import RunRequest

JOB_VERSION = 1


class JobError(ValueError):
    """A payload that is not a job this version can run."""


@dataclass(frozen=True)
class RunJob:
    run_id: str
    request: RunRequest
    user_message_id: str
    chat_message_id: str
    override_config: Mapping[str, Any] = field(default_factory=dict)
    # Wall-clock times (seconds since the epoch; 0: none): the run fails if no worker took it by
    # `start_by`, and is stopped if it has not ended by `deadline`.
    start_by: float = 0.0
    deadline: float = 0.0
    queued_by: str = ""  # the API node's consumer-style name, for logs

    def dumps(self) -> bytes:
        request = self.request
        return orjson.dumps(
            {
                "v": JOB_VERSION,
                "run": self.run_id,
                "chatflow": request.chatflow_id,
                "question": request.question,
                "chat": request.chat_id,
                "session": request.session_id,
                "chatType": request.chat_type,
                "history": [[turn.role, turn.content] for turn in request.seed_history],
                "maxHistory": request.max_history_turns,
                "ids": [self.user_message_id, self.chat_message_id],
                "override": dict(self.override_config),
                "startBy": self.start_by,
                "deadline": self.deadline,
                "by": self.queued_by,
            }
        )

    @classmethod
    def loads(cls, payload: bytes) -> RunJob:
        try:
            data = orjson.loads(payload)
            if data.get("v") != JOB_VERSION:
                raise JobError(f"job version {data.get('v')!r}, this worker runs {JOB_VERSION}")
            user_id, chat_message_id = data["ids"]
            request = RunRequest(
                chatflow_id=str(data["chatflow"]),
                question=str(data["question"]),
                chat_id=str(data["chat"]),
                session_id=str(data["session"]),
                chat_type=str(data["chatType"]),
                seed_history=tuple(ChatTurn(role, str(content)) for role, content in data["history"]),
                max_history_turns=data["maxHistory"],
            )
            return cls(
                run_id=str(data["run"]),
                request=request,
                user_message_id=str(user_id),
                chat_message_id=str(chat_message_id),
                override_config=dict(data["override"]),
                start_by=float(data["startBy"]),
                deadline=float(data["deadline"]),
                queued_by=str(data.get("by", "")),
            )
        except JobError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise JobError(f"not a run job: {exc!r:.200}") from None

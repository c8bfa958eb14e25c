"""Assembling OpenAI's streamed tool-call deltas: by index, whatever order they interleave in."""

from __future__ import annotations

import pytest

from streamwise.engine.tools import AgentTurn, ToolCall
from streamwise.nodes.models.openai_tools import MAX_CALLS, _absorb, _Building, _finished, wire_messages


def assemble(deltas: list[dict[str, object]]) -> list[ToolCall]:
    building: dict[int, _Building] = {}
    for delta in deltas:
        _absorb(building, delta)
    return [_finished(building[index], index) for index in sorted(building)]


def test_interleaved_parallel_calls_are_put_together_by_index() -> None:
    calls = assemble(
        [
            {"index": 1, "id": "b", "function": {"name": "second", "arguments": ""}},
            {"index": 0, "id": "a", "function": {"name": "first", "arguments": '{"x"'}},
            {"index": 1, "function": {"arguments": '{"y": 2}'}},
            {"index": 0, "function": {"arguments": ": 1}"}},
        ]
    )
    assert calls == [ToolCall("a", "first", '{"x": 1}'), ToolCall("b", "second", '{"y": 2}')]


def test_a_name_split_across_deltas_and_a_missing_id() -> None:
    calls = assemble(
        [{"index": 0, "function": {"name": "calcu"}}, {"index": 0, "function": {"name": "lator"}}]
    )
    assert calls == [ToolCall("call_0", "calculator", "")]


@pytest.mark.parametrize("index", [-1, "0", True, 1.5])
def test_an_index_that_is_not_a_number_is_malformed(index: object) -> None:
    with pytest.raises(TypeError):
        assemble([{"index": index, "function": {"name": "x"}}])


def test_too_many_calls_in_one_answer_is_malformed() -> None:
    with pytest.raises(TypeError):
        assemble([{"index": i, "function": {"name": "x"}} for i in range(MAX_CALLS + 1)])


def test_turns_go_out_in_openais_shape() -> None:
    call = ToolCall("c1", "calculator", '{"input": "1+1"}')
    assert wire_messages(
        [
            AgentTurn("user", "q"),
            AgentTurn("assistant", "", tool_calls=(call,)),
            AgentTurn("tool", "2", tool_call_id="c1", name="calculator"),
        ]
    ) == [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"input": "1+1"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "2"},
    ]

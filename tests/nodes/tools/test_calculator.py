"""The calculator: the arithmetic a model sends, and the inputs it must refuse, quickly."""

from __future__ import annotations

import time

import pytest

from streamwise.engine.ports import ChatTurn, SessionContext
from streamwise.engine.tools import Tool, ToolContext, ToolFailure
from streamwise.nodes.services import NodeServices
from streamwise.nodes.tools.calculator import SPEC, Calculator, evaluate, format_number


class _NoHistory:
    async def history(self, chatflow_id: str, session_id: str, *, limit: int | None = None) -> list[ChatTurn]:
        return []


CONTEXT = ToolContext(session=SessionContext("flow", "chat", "session", _NoHistory()))


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("2 + 2", "4"),
        ("7 - 10", "-3"),
        ("6 * 7", "42"),
        ("7 / 2", "3.5"),
        ("10 / 5", "2"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2^10", "1024"),
        ("2 ** -1", "0.5"),
        ("(1 + 2) * (3 + 4)", "21"),
        ("-(-3)", "3"),
        ("+5", "5"),
        ("0.1 + 0.2", "0.3"),
        ("1.5e3 * 2", "3000"),
        ("2.5E-3", "0.0025"),
        ("1 / 3", "0.333333333333333"),
        ("123456789 * 987654321", "121932631112635269"),
        ("sqrt(16)", "4"),
        ("sqrt(2)", "1.4142135623731"),
        ("abs(-3.5)", "3.5"),
        ("round(3.14159, 2)", "3.14"),
        ("round(2.5)", "2"),
        ("sin(pi / 2)", "1"),
        ("cos(0)", "1"),
        ("tan(0)", "0"),
        ("log(100, 10)", "2"),
        ("log10(1000)", "3"),
        ("ln(e)", "1"),
        ("log(e)", "1"),
        ("exp(0)", "1"),
        ("floor(2.7)", "2"),
        ("ceil(2.1)", "3"),
        ("min(3, 1, 2)", "1"),
        ("max(3, 1, 2)", "3"),
        ("factorial(20)", "2432902008176640000"),
        ("PI * 2", "6.28318530717959"),
        ("15 * 4 =", "60"),
        ("3 \u00d7 4 \u00f7 2", "6"),  # the signs for times and divided by
        ("2 ** 64", "18446744073709551616"),
        ("1e20", "1e+20"),
        ("(" * 60 + "1" + ")" * 60, "1"),  # parentheses alone nest nothing
    ],
)
def test_arithmetic(expression: str, result: str) -> None:
    assert evaluate(expression) == result


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('id')", "only these functions may be called"),
        ("(lambda: 1)()", "only these functions may be called"),
        ("lambda: 1", "not arithmetic"),
        ("x + 1", "unknown name 'x'"),
        ("os", "unknown name"),
        ("(1).real", "attribute access is not allowed"),
        ("pi.__class__", "attribute access is not allowed"),
        ("[1, 2][0]", "indexing is not allowed"),
        ("'a' * 3", "only numbers are allowed"),
        ("True + 1", "only numbers are allowed"),
        ("1j * 2", "only numbers are allowed"),
        ("[x for x in (1, 2)]", "not arithmetic"),
        ("(y := 3)", "not arithmetic"),
        ("1 if 1 else 2", "not arithmetic"),
        ("1 < 2", "not arithmetic"),
        ("1 << 2", "only + - * /"),
        ("sqrt(x=4)", "plain arguments only"),
        ("max(*[1, 2])", "plain arguments only"),
        ("sqrt(1, 2)", "sqrt takes 1 arguments"),
        ("9 ** 9 ** 9", "more than 1000 digits"),
        ("10 ** 100000", "more than 1000 digits"),
        ("pow(10, 100000)", "more than 1000 digits"),
        ("2 ** 4000 * 1", "more than 1000 digits"),
        ("10 ** 600 * 10 ** 600", "more than 1000 digits"),
        ("factorial(100000)", "more than 1000 digits"),
        ("factorial(10 ** 500)", "too large"),
        ("factorial(-1)", "not negative"),
        ("factorial(2.5)", "whole number"),
        ("round(1, 10 ** 9)", "at most 100 decimal places"),
        ("2.0 ** 10 ** 400", "too large"),
        ("exp(1000)", "too large"),
        ("1e309", "too large"),
        ("10 ** 300 / 10 ** -300", "too large"),
        ("1 / 0", "division by zero"),
        ("5 // 0", "division by zero"),
        ("5 % 0.0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** (1 / 3)", "not a real number"),
        ("log(0)", "math domain error"),
    ],
)
def test_refused_expressions(expression: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(ToolFailure, match="cannot calculate that") as refused:
        evaluate(expression)
    assert reason in refused.value.message
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "empty"),
        ("1 +" + " 1 +" * 400 + " 1", "longer than 1000 characters"),
        ("-" * 900 + "1", "nested more than 40 levels"),
        ("abs(" * 60 + "1" + ")" * 60, "nested more than 40 levels"),
        ("(" * 300 + "1" + ")" * 300, "not an arithmetic expression"),
        ("2 +* 3", "not an arithmetic expression"),
        ("print('hi'); 1", "not an arithmetic expression"),
        ("import os", "not an arithmetic expression"),
        ("1\x00", "not an arithmetic expression"),
    ],
)
def test_unreadable_or_oversized_expressions(expression: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(ToolFailure) as refused:
        evaluate(expression)
    assert reason in refused.value.message
    assert time.monotonic() - started < 2


def test_numbers_are_written_plainly() -> None:
    assert format_number(3) == "3"
    assert format_number(3.0) == "3"
    assert format_number(-0.0) == "0"
    assert format_number(0.1 + 0.2) == "0.3"
    assert format_number(2.5e-10) == "2.5e-10"
    assert len(evaluate("2 ** 3000")) == 904


async def test_the_tool_takes_input_and_runs_off_the_event_loop() -> None:
    tool = SPEC.build("calculator_0", {}, NodeServices(env={}))
    assert isinstance(tool, Calculator) and isinstance(tool, Tool)
    assert tool.schema.name == "calculator"
    assert tool.schema.parameters["required"] == ["input"]
    assert tool.side_effects is False
    assert (await tool.call({"input": "(2 + 3) * 4"}, CONTEXT)).output == "20"
    assert (await tool.call({"expression": "2 * 21"}, CONTEXT)).output == "42"  # another name, alone
    assert (await tool.call({"input": 7}, CONTEXT)).output == "7"
    with pytest.raises(ToolFailure, match="'input'"):
        await tool.call({}, CONTEXT)
    started = time.monotonic()
    with pytest.raises(ToolFailure, match="more than 1000 digits"):
        await tool.call({"input": "9**9**9**9"}, CONTEXT)
    assert time.monotonic() - started < 2

"""calculator: works out the arithmetic a model hands it, as Flowise's Calculator tool does.

The expression is model text, and a prompt can put anything in it, so it is never given to Python's
`eval`. It is parsed with `ast.parse(mode="eval")` (which only builds a tree; nothing runs) and the
tree is walked here, with an allow-list: numbers, + - * / // % ** (and ^ as power), unary signs,
parentheses, a few constants and the functions in `_FUNCTIONS`. Anything else (names, attributes,
subscripts, strings, lambdas, comprehensions) is refused before a single operation is done.

Big numbers are the other danger: `9**9**9` would keep a CPU busy for hours, and a thread cannot be
killed. So sizes are bounded before each operation, not after: an integer power or product whose
result would pass `MAX_DIGITS` digits is refused without computing it, and so is a factorial. With
those bounds every expression of at most `MAX_LENGTH` characters finishes in milliseconds; the work
still runs in a worker thread, under a timeout, so that the event loop never waits on it.
"""

from __future__ import annotations

import ast
import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Any

from streamwise.engine.tools import ToolContext, ToolFailure, ToolResult, ToolSchema
from streamwise.nodes.services import NodeServices, ToolPolicy
from streamwise.nodes.spec import NodeSpec

LABEL = "Calculator"
NAME = "calculator"
DESCRIPTION = (
    "Gives the result of a math expression. The input must be a mathematical expression that a "
    "simple calculator could work out, such as (2 + 3) * 4 or sqrt(2) / 2."
)
MAX_LENGTH = 1000  # characters of expression
MAX_DEPTH = 40  # levels of nesting in the parsed expression
MAX_DIGITS = 1000  # digits of any integer, intermediate or final
_MAX_BITS = int(MAX_DIGITS * math.log2(10))
_MAX_SECONDS = 5.0  # far above what the bounds allow; a safety net, not the limit

Number = int | float

_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e, "tau": math.tau}
_REPLACEMENTS = {"^": "**", "×": "*", "÷": "/", "−": "-"}  # noqa: RUF001 (the signs a model may write)


class _Refused(Exception):
    """An expression this calculator will not work out; the message says why, for the model."""


def _integral(value: Number, what: str) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise _Refused(f"{what} must be a whole number")
        return int(value)
    return value


def _factorial(value: Number) -> int:
    n = _integral(value, "the factorial's argument")
    if n < 0:
        raise _Refused("factorial needs a number that is not negative")
    if math.lgamma(n + 1) / math.log(10) > MAX_DIGITS:
        raise _Refused(f"the result would have more than {MAX_DIGITS} digits")
    return math.factorial(n)


def _round(value: Number, digits: Number = 0) -> Number:
    places = _integral(digits, "the number of decimal places")
    if abs(places) > 100:
        raise _Refused("round takes at most 100 decimal places")
    return round(value, places) if places else round(value)


def _log(value: Number, base: Number | None = None) -> float:
    return math.log(value) if base is None else math.log(value, base)


def _power(base: Number, exponent: Number) -> Number:
    """base ** exponent, refused when an integer result would pass MAX_DIGITS digits."""
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if exact and abs(base) > 1 and exponent * math.log2(abs(base)) > _MAX_BITS:
        raise _Refused(f"the result would have more than {MAX_DIGITS} digits")
    result: Any = base**exponent
    if isinstance(result, complex):
        raise _Refused("the result is not a real number")
    checked: Number = result
    return checked


# name -> (function, fewest arguments, most arguments)
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "abs": (abs, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "cbrt": (math.cbrt, 1, 1),
    "exp": (math.exp, 1, 1),
    "ln": (math.log, 1, 1),
    "log": (_log, 1, 2),
    "log10": (math.log10, 1, 1),
    "log2": (math.log2, 1, 1),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
    "tan": (math.tan, 1, 1),
    "asin": (math.asin, 1, 1),
    "acos": (math.acos, 1, 1),
    "atan": (math.atan, 1, 1),
    "atan2": (math.atan2, 2, 2),
    "sinh": (math.sinh, 1, 1),
    "cosh": (math.cosh, 1, 1),
    "tanh": (math.tanh, 1, 1),
    "degrees": (math.degrees, 1, 1),
    "radians": (math.radians, 1, 1),
    "hypot": (math.hypot, 1, 10),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
    "trunc": (math.trunc, 1, 1),
    "round": (_round, 1, 2),
    "min": (min, 1, 100),
    "max": (max, 1, 100),
    "pow": (_power, 2, 2),
    "factorial": (_factorial, 1, 1),
}


def _checked(value: Any) -> Number:
    """A value that may take part in the next operation: a finite real number of bounded size."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused("the result is too large")
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise _Refused(f"the result would have more than {MAX_DIGITS} digits")
    return value


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        exact = isinstance(left, int) and isinstance(right, int)
        if exact and abs(int(left)).bit_length() + abs(int(right)).bit_length() > _MAX_BITS + 1:
            raise _Refused(f"the result would have more than {MAX_DIGITS} digits")
        return left * right
    if isinstance(op, ast.Div):
        return left / right
    if isinstance(op, ast.FloorDiv):
        return left // right
    if isinstance(op, ast.Mod):
        return left % right
    if isinstance(op, ast.Pow):
        return _power(left, right)
    raise _Refused("only + - * / // % and ** (or ^) are allowed")


def _walk(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _walk(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _Refused("only numbers are allowed, not text or other values")
        return _checked(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _walk(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        return _checked(_binary(node.op, _walk(node.left), _walk(node.right)))
    if isinstance(node, ast.Name):
        if node.id.lower() in _CONSTANTS:
            return _CONSTANTS[node.id.lower()]
        raise _Refused(f"unknown name {node.id!r}: only pi, e and tau are known")
    if isinstance(node, ast.Call):
        return _checked(_call(node))
    if isinstance(node, ast.Attribute):
        raise _Refused("attribute access is not allowed")
    if isinstance(node, ast.Subscript):
        raise _Refused("indexing is not allowed")
    raise _Refused(f"{type(node).__name__} is not arithmetic")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id.lower() not in _FUNCTIONS:
        known = ", ".join(sorted(_FUNCTIONS))
        raise _Refused(f"only these functions may be called: {known}")
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise _Refused("functions take plain arguments only")
    function, fewest, most = _FUNCTIONS[node.func.id.lower()]
    if not fewest <= len(node.args) <= most:
        raise _Refused(
            f"{node.func.id} takes {fewest}" + (f" to {most}" if most > fewest else "") + " arguments"
        )
    result: Number = function(*(_walk(arg) for arg in node.args))
    return result


def _depth(tree: ast.AST) -> int:
    """The nesting depth of a tree, without recursion (so a deep tree cannot overflow the stack)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def format_number(value: Number) -> str:
    """Integers as they are; floats to 15 significant digits, so 0.1 + 0.2 reads 0.3."""
    if isinstance(value, int):
        return str(value)
    text = format(value, ".15g")
    return "0" if text == "-0" else text


def evaluate(expression: str) -> str:
    """The value of an arithmetic expression as text; ToolFailure for anything else."""
    text = expression.strip().rstrip("=").strip()
    if not text:
        raise ToolFailure("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ToolFailure(f"the expression is longer than {MAX_LENGTH} characters")
    for sign, python in _REPLACEMENTS.items():
        text = text.replace(sign, python)
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ToolFailure("that is not an arithmetic expression this calculator can read") from None
    if _depth(tree) > MAX_DEPTH:
        raise ToolFailure(f"the expression is nested more than {MAX_DEPTH} levels deep")
    try:
        return format_number(_walk(tree))
    except _Refused as exc:
        raise ToolFailure(f"cannot calculate that: {exc}") from None
    except ZeroDivisionError:
        raise ToolFailure("cannot calculate that: division by zero") from None
    except OverflowError:
        raise ToolFailure("cannot calculate that: the result is too large") from None
    except (ValueError, TypeError, ArithmeticError) as exc:  # math domain errors, such as sqrt(-1)
        raise ToolFailure(f"cannot calculate that: {exc}") from None


class Calculator:
    """The calculator tool: one string argument, `input`, as in Flowise (LangChain's Calculator)."""

    side_effects = False

    def __init__(self, policy: ToolPolicy | None = None) -> None:
        self._seconds = min(_MAX_SECONDS, (policy or ToolPolicy()).timeout_seconds)

    @property
    def schema(self) -> ToolSchema:
        return ToolSchema(
            name=NAME,
            description=DESCRIPTION,
            parameters={
                "type": "object",
                "properties": {"input": {"type": "string", "description": "The math expression to work out"}},
                "required": ["input"],
            },
        )

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        expression = arguments.get("input")
        if expression is None and len(arguments) == 1:  # a model that named the argument otherwise
            expression = next(iter(arguments.values()))
        if isinstance(expression, int | float) and not isinstance(expression, bool):
            expression = str(expression)
        if not isinstance(expression, str):
            raise ToolFailure("give the expression as text in 'input'")
        try:
            async with asyncio.timeout(self._seconds):
                return ToolResult(await asyncio.to_thread(evaluate, expression))
        except TimeoutError:
            raise ToolFailure("cannot calculate that: it takes too long") from None


def build(node_id: str, inputs_: Mapping[str, Any], services: NodeServices) -> Calculator:
    return Calculator(services.tools)


SPEC = NodeSpec(name=NAME, label=LABEL, category="Tools", build=build)

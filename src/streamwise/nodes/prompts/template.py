"""Flowise/LangChain-style f-string templates: `{name}` variables, `{{` and `}}` for literal braces."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from streamwise.errors import NodeConfigError

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_\-]*)\}")
QUESTION_PLACEHOLDER = "{{question}}"


def variables(template: str) -> list[str]:
    """Variable names in order of first appearance."""
    seen: list[str] = []
    for match in _TOKEN.finditer(template):
        name = match.group(1)
        if name and name not in seen:
            seen.append(name)
    return seen


def render(template: str, values: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values.get(match.group(1), "")

    return _TOKEN.sub(substitute, template)


def prompt_values(raw: Any, node_id: str) -> dict[str, str]:
    """Flowise's `promptValues` input: a JSON object (or its text) mapping variables to values."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise NodeConfigError(f"Node {node_id}: promptValues is not valid JSON", node_id) from None
    if not isinstance(raw, Mapping):
        raise NodeConfigError(f"Node {node_id}: promptValues must be a JSON object", node_id)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def fill(
    template: str, values: Mapping[str, str], question: str, *, question_fills_unset: bool = True
) -> str:
    """Render with `{{question}}` in values replaced.

    As in a LangChain chain, the template's first variable that no prompt value sets is the chain's
    input, so it takes the question (unless `question_fills_unset` is off, as for system messages).
    """
    names = variables(template)
    question_used = "question" in names or any(QUESTION_PLACEHOLDER in value for value in values.values())
    resolved = {key: value.replace(QUESTION_PLACEHOLDER, question) for key, value in values.items()}
    resolved.setdefault("question", question)
    if question_fills_unset and not question_used:
        for name in names:
            if name not in resolved:
                resolved[name] = question
                break
    return render(template, resolved)

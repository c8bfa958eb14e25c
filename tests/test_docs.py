"""The documentation stays true to the code: every node and honoured input, every setting."""

from __future__ import annotations

from pathlib import Path

from streamwise.nodes.catalog import BUILTINS
from streamwise.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_node_and_honoured_input_is_documented() -> None:
    nodes_md = (ROOT / "docs" / "nodes.md").read_text()
    for spec in BUILTINS:
        section = nodes_md.split(f"### `{spec.name}`", 1)
        assert len(section) == 2, f"docs/nodes.md has no section for {spec.name}"
        body = section[1].split("\n### ", 1)[0]
        for name in (*spec.honoured, *spec.ignored):
            assert f"`{name}`" in body, f"docs/nodes.md does not mention {spec.name}.{name}"


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`STREAMWISE_{name.upper()}`" in readme, name

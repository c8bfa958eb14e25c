"""Fixtures for loader tests: services whose data directory is a fresh temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamwise.nodes.services import NodeServices


@pytest.fixture
def services(tmp_path: Path) -> NodeServices:
    # Loaders hold no resources: plain services, with a data directory of the test's own.
    return NodeServices(env={}, data_dir=tmp_path / "data")

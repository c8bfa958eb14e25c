"""The seed's curl command, run as a user would type it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.flows import fake_flow
from tests.support.server import LiveServer
from tests.support.sse import check_invariant, parse_frames


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_streams_from_the_predictions_path(server: LiveServer) -> None:
    chatflow_id = server.create_flow(fake_flow(tokens=["Hello", " back", "!"]))
    command = (
        f"curl -sS --max-time 30 {server.base_url}/api/v1/predictions/{chatflow_id} "
        '-H "Content-Type: application/json" -d \'{"question": "Hello world!", "streaming": true}\''
    )
    completed = subprocess.run(command, shell=True, capture_output=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert check_invariant(parse_frames(completed.stdout)) == "Hello back!"

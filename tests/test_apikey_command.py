"""`streamwise apikey create | list | delete`, and `streamwise start` refusing to open up without a key."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from streamwise import cli
from tests.support.process import REPO, started
from tests.support.server import free_port


def streamwise(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "STREAMWISE_DATA_DIR": str(data_dir)}
    environment.pop("STREAMWISE_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "streamwise", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_create_prints_the_key_once_list_never_shows_it_and_delete_takes_a_name(tmp_path: Path) -> None:
    created = streamwise(tmp_path, "apikey", "create", "website widget")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sw_") and len(key) == 59
    assert "Authorization: Bearer" in created.stderr
    listed = streamwise(tmp_path, "apikey", "list")
    assert listed.returncode == 0
    assert "website widget" in listed.stdout and key[:16] in listed.stdout and key not in listed.stdout
    port = free_port()
    with started(tmp_path, port) as server:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/v1/chatflows", timeout=10).status_code == 401
        ok = httpx.get(f"{base}/api/v1/chatflows", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert ok.status_code == 200
        deleted = streamwise(tmp_path, "apikey", "delete", "website widget")
        assert deleted.returncode == 0, deleted.stderr
        # The running server sees the deletion within about a second.
        for _ in range(50):
            gone = httpx.get(
                f"{base}/api/v1/chatflows", headers={"Authorization": f"Bearer {key}"}, timeout=10
            )
            if gone.status_code == 200 and not httpx.get(f"{base}/api/v1/apikey", timeout=10).json():
                break
            time.sleep(0.1)
        else:
            pytest.fail("the server still used the deleted key")
        server.terminate()
        server.wait(20)
    output = server.stdout.read() if server.stdout else ""
    assert key not in output
    assert streamwise(tmp_path, "apikey", "delete", "nope").returncode == 1


def test_start_beyond_loopback_without_a_key_refuses_and_says_how_to_make_one(tmp_path: Path) -> None:
    refused = streamwise(tmp_path, "start", "--host", "0.0.0.0", "--port", str(free_port()), timeout=60)
    assert refused.returncode == 2
    assert "streamwise apikey create" in refused.stderr and "--insecure" in refused.stderr


def test_open_to_the_network_rules(tmp_path: Path) -> None:
    from streamwise.settings import Settings

    assert cli.open_to_the_network(Settings(data_dir=tmp_path, host="127.0.0.1")) is None
    assert cli.open_to_the_network(Settings(data_dir=tmp_path, host="0.0.0.0", auth="open")) is None
    assert cli.open_to_the_network(Settings(data_dir=tmp_path, host="0.0.0.0", auth="keys")) is None
    assert cli.open_to_the_network(Settings(data_dir=tmp_path, host="0.0.0.0")) is not None
    assert streamwise(tmp_path, "apikey", "create", "admin").returncode == 0
    assert cli.open_to_the_network(Settings(data_dir=tmp_path, host="0.0.0.0")) is None

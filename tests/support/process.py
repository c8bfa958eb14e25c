"""`streamwise start` in a child process, as a user runs it: for tests that need a server of its own
(signals, kill -9, timing the event loop without sharing the test's interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def started(
    data_dir: Path,
    port: int,
    env: Mapping[str, str] | None = None,
    *,
    log: Path | None = None,
    args: Sequence[str] = (),
) -> Iterator[subprocess.Popen[str]]:
    """Start the server on 127.0.0.1:`port` and wait (up to 30 s) until it answers ping. On leaving,
    a server still running is sent SIGTERM, then SIGKILL if it does not stop, by its own pid.

    Its output goes to a pipe (`read_output`), or to the file `log` for a chatty server (debug level),
    which would fill a pipe nobody reads and stall. `args` go after `start` (`--role api`)."""
    environment = child_environment(data_dir, env)
    output = log.open("w") if log is not None else None
    process = subprocess.Popen(
        [sys.executable, "-m", "streamwise", "start", "--host", "127.0.0.1", "--port", str(port), *args],
        env=environment,
        stdout=output or subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_answering(
            process,
            lambda: httpx.get(f"http://127.0.0.1:{port}/api/v1/ping", timeout=1).text == "pong",
            within=30,
            what="the server",
            output=lambda: _read(process),
        )
        yield process
    finally:
        stop_child(process)
        if output is not None:
            output.close()


def child_environment(data_dir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a Streamwise child runs with: the test's scripted nodes, a data directory of
    its own, and no database URL or Redis URL of the caller's unless `env` names them."""
    environment = {
        **os.environ,
        "STREAMWISE_DATA_DIR": str(data_dir),
        "STREAMWISE_PRELOAD_LOCAL_MODEL": "false",
        "STREAMWISE_SHUTDOWN_GRACE_SECONDS": "5",
        # The scripted fake model, from this repository's tests (the child runs from its root).
        "STREAMWISE_NODE_MODULES": ",".join(
            ("tests.support.fake_model", "tests.support.fake_retrieval", "tests.support.fake_tools")
        ),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **(env or {}),
    }
    for name in ("STREAMWISE_DATABASE_URL", "STREAMWISE_REDIS_URL"):
        if not env or name not in env:
            environment.pop(name, None)
    return environment


def _read(process: subprocess.Popen[str]) -> str:
    return process.stdout.read() if process.stdout else ""


def wait_until_answering(
    process: subprocess.Popen[Any],
    answers: Callable[[], bool],
    *,
    within: float,
    what: str,
    output: Callable[[], str],
) -> None:
    """Poll `answers()` (a request to the child; a refused connection counts as not yet) every 50 ms
    until it is true; fail with the child's `output()` if it exits, or after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        assert process.poll() is None, f"{what} exited: {output()}"
        try:
            if answers():
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{what} did not start within {within:g} s"
        time.sleep(0.05)


def stop_child(process: subprocess.Popen[Any]) -> None:
    """A child still running is sent SIGTERM, then SIGKILL if it does not stop, by its own pid."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def read_output(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.read()


@dataclass
class PingProbe:
    """Times `GET /api/v1/ping` every `interval` seconds from a thread of its own."""

    base_url: str
    interval: float = 0.01
    latencies: list[float] | None = None

    def __post_init__(self) -> None:
        self.latencies = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ping-probe")

    def _run(self) -> None:
        assert self.latencies is not None
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                response = client.get(f"{self.base_url}/api/v1/ping")
                assert response.text == "pong"
                self.latencies.append(time.perf_counter() - started)
                self._stop.wait(self.interval)

    def __enter__(self) -> PingProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def worst(self) -> float:
        assert self.latencies
        return max(self.latencies)

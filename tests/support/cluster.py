"""A scale-out deployment in child processes, as a user runs one: API nodes (`streamwise start --role
api`) and workers (`streamwise worker`) sharing a PostgreSQL database and a Redis, for the tests that
kill, stop and restart its parts.

Every key it makes in Redis starts with a prefix of its own, removed when the block ends, after
every child is stopped (a worker still running would make the jobs stream again); every child is
stopped by its own pid (SIGCONT first, in case a test left it stopped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import redis

from tests.support.process import child_environment, started, stop_child
from tests.support.server import create_flow, free_port

WORKER_READY = "taking up to"


@dataclass
class Cluster:
    directory: Path
    env: dict[str, str]
    prefix: str
    api_urls: list[str] = field(default_factory=list)
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    stack: ExitStack = field(default_factory=ExitStack)

    def create_flow(self, flow_data: str, name: str = "cluster flow") -> str:
        return create_flow(self.api_urls[0], flow_data, name)

    def start_api(self, *, role: str = "api") -> str:
        port = free_port()
        log = self.directory / f"api-{len(self.api_urls)}.log"
        self.logs.append(log)
        self.stack.enter_context(
            started(self.directory / f"api-{port}", port, self.env, log=log, args=("--role", role))
        )
        url = f"http://127.0.0.1:{port}"
        self.api_urls.append(url)
        return url

    def start_worker(self, concurrency: int = 50) -> subprocess.Popen[str]:
        index = len(self.workers)
        log = self.directory / f"worker-{index}.log"
        self.logs.append(log)
        output = log.open("w")
        self.stack.callback(output.close)
        data_dir = self.directory / f"worker-{index}"
        process = subprocess.Popen(
            [sys.executable, "-m", "streamwise", "worker", "--concurrency", str(concurrency)],
            env=child_environment(data_dir, self.env),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.stack.callback(stop_process, process)
        self.workers.append(process)
        deadline = time.monotonic() + 30
        while WORKER_READY not in log.read_text():
            assert process.poll() is None, f"the worker exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"the worker did not start: {log.read_text()}"
            time.sleep(0.05)
        return process

    def output(self) -> str:
        """Every child's log, for a failing assertion."""
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in self.logs if log.exists())


def stop_process(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
    stop_child(process)


@contextmanager
def cluster(
    directory: Path,
    database_url: str,
    redis_url: str,
    *,
    api_nodes: int = 1,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
) -> Iterator[Cluster]:
    """API nodes and workers on `database_url` and `redis_url` (with a key prefix of their own)."""
    prefix = f"test-{uuid4()}"
    environment = {
        "STREAMWISE_DATABASE_URL": database_url,
        "STREAMWISE_REDIS_URL": redis_url,
        "STREAMWISE_REDIS_PREFIX": prefix,
        "STREAMWISE_SEED": "false",
        **(env or {}),
    }
    deployment = Cluster(directory, environment, prefix)
    try:
        with deployment.stack:
            for _ in range(api_nodes):
                deployment.start_api()
            for _ in range(workers):
                deployment.start_worker()
            yield deployment
    finally:
        delete_prefix(redis_url, prefix)


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under `prefix` and check none is left; nothing to do when that Redis is gone
    (a redis-server of the test's own, already stopped). Synchronous, so that it works from any
    thread, event loop or not."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    pattern = f"{prefix}:*"
    try:
        found = list(client.scan_iter(match=pattern, count=1000))
        if found:
            client.delete(*found)
        assert list(client.scan_iter(match=pattern, count=1000)) == []
    except redis.ConnectionError:
        pass
    finally:
        client.close()

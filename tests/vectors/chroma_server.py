"""A real Chroma server for tests: `chroma run` (the chromadb package's console script) on 127.0.0.1.

Started on a free port with its data in a temporary folder, waited for with a deadline, and stopped
by its own pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.process import stop_child, wait_until_answering
from tests.support.server import free_port

CHROMA = Path(sys.executable).parent / "chroma"


@contextmanager
def chroma_server(data: Path, start_within: float = 60.0) -> Iterator[str]:
    """Yield the server's URL once its heartbeat answers; stop it (SIGTERM, then SIGKILL) after."""
    port = free_port()
    log = data / "chroma.log"
    environment = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(
            process,
            lambda: httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200,
            within=start_within,
            what="the Chroma server",
            output=lambda: log.read_text(errors="replace")[-2000:],
        )
        yield url
    finally:
        stop_child(process)

"""`streamwise chat-ui`: run the Streamlit chat app (`app.py`) against a Streamwise server.

Streamlit runs in a child process (`python -m streamlit run ...`), headless and without usage
statistics; the server's URL reaches the app through STREAMWISE_CHAT_UI_SERVER. Ctrl-C or SIGTERM stops
the child (SIGTERM, then SIGKILL if it has not exited within `STOP_SECONDS`) and then this process.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from streamwise.chat_ui import APP_PATH, DEFAULT_SERVER, SERVER_ENV

STOP_SECONDS = 10.0


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("chat-ui", help="open a Streamlit chat app for this server's chatflows")
    parser.add_argument(
        "--server",
        default=os.environ.get(SERVER_ENV, DEFAULT_SERVER),
        help=f"the Streamwise server's URL (default: {SERVER_ENV} or {DEFAULT_SERVER})",
    )
    parser.add_argument("--port", type=int, default=8501, help="the chat app's TCP port (default: 8501)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")


def streamlit_command(port: int, host: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None:
        print("streamwise chat-ui needs Streamlit: pip install streamlit", file=sys.stderr)
        return 1
    environment = {**os.environ, SERVER_ENV: str(args.server).rstrip("/")}
    print(f"Chat app for {args.server} on http://{args.host}:{args.port}", flush=True)
    process = subprocess.Popen(streamlit_command(args.port, args.host), env=environment)
    stop_deadline: list[float] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stop_deadline:
            stop_deadline.append(time.monotonic() + STOP_SECONDS)
        if process.poll() is None:
            process.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            try:
                code = process.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stop_deadline and time.monotonic() > stop_deadline[0]:
                    process.kill()
            except KeyboardInterrupt:  # the child got the Ctrl-C too; make sure it goes
                stop(signal.SIGINT, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.kill()
            process.wait(5)
    return 0 if stop_deadline else code

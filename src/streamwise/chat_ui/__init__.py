"""`streamwise chat-ui`: a Streamlit chat app for a Streamwise server, talking to it only through the
`streamwise.client` SDK. `app.py` is the Streamlit script; `answers.py` streams one answer on a thread
of its own so that the script can keep redrawing it, and a Stop click can abort it."""

from __future__ import annotations

from pathlib import Path

APP_PATH = Path(__file__).resolve().parent / "app.py"
SERVER_ENV = "STREAMWISE_CHAT_UI_SERVER"
DEFAULT_SERVER = "http://127.0.0.1:3000"

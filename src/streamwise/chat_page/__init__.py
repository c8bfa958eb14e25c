"""The chat page the server serves at `/chatbot/{id}`: one HTML template, one script, one stylesheet.

The files live in `static/` and ship as package data; there is no build step and nothing is fetched
from anywhere but this server (the route sends a Content-Security-Policy that forbids it).
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"

"""Flowise's error body: `{"statusCode": N, "success": false, "message": "...", "stack": {}}`."""

from __future__ import annotations

from typing import Any


def error_body(status_code: int, message: str) -> dict[str, Any]:
    return {"statusCode": status_code, "success": False, "message": message, "stack": {}}

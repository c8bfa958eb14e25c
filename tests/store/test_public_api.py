from __future__ import annotations

import streamwise.store


def test_exported_names_are_pinned() -> None:
    assert set(streamwise.store.__all__) == {
        "API_MESSAGE",
        "CHATFLOW_EDITABLE_FIELDS",
        "DEFAULT_CHATFLOW_TYPE",
        "USER_MESSAGE",
        "CachedChatflow",
        "ChatflowCache",
        "ChatflowRecord",
        "ChatflowRepository",
        "Database",
        "FeedbackExists",
        "FeedbackRecord",
        "FeedbackRepository",
        "MessageRecord",
        "MessageRepository",
        "RATINGS",
        "to_async_url",
        "to_js_iso",
    }
    for name in streamwise.store.__all__:
        assert getattr(streamwise.store, name) is not None

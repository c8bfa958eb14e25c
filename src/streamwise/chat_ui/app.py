"""The Streamwise chat app: `streamwise chat-ui` runs this script with `streamlit run`.

It talks to the server only through `streamwise.client`. The server's URL comes from the
STREAMWISE_CHAT_UI_SERVER environment variable. The chat id lives in the URL (`?chat=...`), so a page
refresh (a new Streamlit session) finds the same chat and reloads its history from the server, and a
new tab without it starts a chat of its own. How Stop works is described in `answers.py`.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import streamlit as st

from streamwise.chat_ui import DEFAULT_SERVER, SERVER_ENV
from streamwise.chat_ui.answers import Answer, Turn
from streamwise.client import Client, errors
from streamwise.client.models import Chatflow, Message, SourceDocument, UsedTool

REFRESH_SECONDS = 0.25
NOTES = {
    "aborted": "Stopped",
    "interrupted": "Interrupted (the server restarted)",
    "running": "Still answering…",
}

SERVER = os.environ.get(SERVER_ENV, DEFAULT_SERVER).rstrip("/")
state: Any = st.session_state


def client() -> Client:
    return Client(base_url=SERVER, timeout=30.0)


def load_chatflows() -> list[Chatflow]:
    with client() as connection:
        return connection.chatflows()


def load_history(chatflow_id: str, chat_id: str) -> list[Message]:
    with client() as connection:
        return connection.history(chatflow_id, chat_id=chat_id)


def show_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def show_sources(sources: list[SourceDocument] | tuple[SourceDocument, ...]) -> None:
    if not sources:
        return
    with st.expander(f"Sources ({len(sources)})"):
        for document in sources:
            st.markdown(f"**{show_text(document.metadata.get('source', '')) or 'source'}**")
            st.text(document.page_content)


def show_tools(tools: list[UsedTool] | tuple[UsedTool, ...]) -> None:
    if not tools:
        return
    with st.expander(f"Used tools ({len(tools)})"):
        for call in tools:
            st.markdown(f"**{call.tool}**")
            st.code(f"input: {show_text(call.tool_input)}", language=None)
            if call.error:
                st.error(call.error)
            else:
                st.code(f"output: {show_text(call.tool_output)}", language=None)


def show_message(message: Message, error: str | None = None) -> None:
    role = "user" if message.role == "userMessage" else "assistant"
    with st.chat_message(role):
        if message.content:
            st.markdown(message.content)
        if role == "assistant":
            show_sources(message.source_documents)
            show_tools(message.used_tools)
            if message.status == "error":
                st.error(error or "This answer failed.")
            elif message.status in NOTES:
                st.caption(NOTES[message.status])


def show_turn(turn: Turn, answer: Answer) -> None:
    with st.chat_message("assistant"):
        st.markdown(turn.text or "…")
        if turn.calling:
            st.caption(f"calling {', '.join(turn.calling)}…")
        show_sources(turn.sources)
        show_tools(turn.tools)
        if turn.error:
            st.error(turn.error)
        elif turn.status == "aborted":
            st.caption("Stopped")
        if turn.status == "streaming":
            if answer.stopping:
                st.caption("Stopping…")
            else:
                st.button("Stop", key="stop", on_click=answer.stop, type="primary")


@st.fragment(run_every=REFRESH_SECONDS)
def live_answer() -> None:
    """Redraws the running answer several times a second; once it is done, reruns the whole app so
    the stored exchange takes its place."""
    answer: Answer | None = state.get("answer")
    if answer is None:
        return
    done = answer.done
    turn = answer.snapshot()
    show_turn(turn, answer)
    if done:
        state.answer = None
        # A failure before the first byte stores nothing: keep its message on the page.
        state.last_error = (answer.chatflow_id, answer.chat_id, turn.error) if turn.error else None
        state.history_key = None  # reload from the server
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="Streamwise chat")
    if "chat_id" not in state:
        state.chat_id = st.query_params.get("chat") or str(uuid.uuid4())
    st.query_params["chat"] = state.chat_id

    try:
        chatflows = load_chatflows()
    except errors.StreamwiseClientError as exc:
        st.error(f"Cannot list the chatflows of {SERVER}: {exc}")
        st.stop()
        return
    if not chatflows:
        st.info(f"The server at {SERVER} has no chatflows yet.")
        st.stop()
        return

    ids = [flow.id for flow in chatflows]
    names = {flow.id: flow.name for flow in chatflows}
    wanted = st.query_params.get("flow")
    answering = state.get("answer") is not None
    with st.sidebar:
        st.header("Streamwise")
        chatflow_id = st.selectbox(
            "Chatflow",
            ids,
            index=ids.index(wanted) if wanted in ids else 0,
            format_func=lambda flow_id: f"{names[flow_id]} ({flow_id[:8]})",
            disabled=answering,
        )
        if st.button("New chat", disabled=answering):
            state.chat_id = str(uuid.uuid4())
            st.query_params["chat"] = state.chat_id
            state.history_key = None
        st.caption(f"Server: {SERVER}")
        st.caption(f"Chat: {state.chat_id}")
    if chatflow_id is None:
        st.stop()
        return
    st.query_params["flow"] = chatflow_id
    st.title(names[chatflow_id])

    key = (chatflow_id, state.chat_id)
    if state.get("history_key") != key:
        try:
            state.history = load_history(chatflow_id, state.chat_id)
        except errors.StreamwiseClientError as exc:
            st.error(f"Cannot load the chat history: {exc}")
            state.history = []
        state.history_key = key
    last_error = state.get("last_error")
    error = last_error[2] if last_error and last_error[:2] == key else None
    history: list[Message] = state.history
    for index, message in enumerate(history):
        show_message(message, error if index == len(history) - 1 else None)
    if error and not (history and history[-1].status == "error"):
        st.error(error)  # a failure before the exchange was stored

    answer: Answer | None = state.get("answer")
    if answer is not None:
        with st.chat_message("user"):
            st.markdown(answer.question)
        live_answer()

    question = st.chat_input("Ask a question", disabled=answer is not None)
    if question and answer is None:
        state.last_error = None
        state.answer = Answer(SERVER, chatflow_id, state.chat_id, question).start()
        st.rerun()


main()

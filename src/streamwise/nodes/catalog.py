"""The built-in nodes, listed explicitly: what a server can run unless it is given more."""

from __future__ import annotations

from streamwise.nodes.chains import (
    conversation_chain,
    conversational_retrieval_qa_chain,
    llm_chain,
    retrieval_qa_chain,
)
from streamwise.nodes.indexing import record_manager
from streamwise.nodes.memory import buffer_memory, buffer_window_memory
from streamwise.nodes.models import chat_local, chat_ollama, chat_openai
from streamwise.nodes.prompts import chat_prompt_template, prompt_template
from streamwise.nodes.spec import NodeSpec

BUILTINS: tuple[NodeSpec, ...] = (
    chat_openai.SPEC,
    chat_ollama.SPEC,
    chat_local.SPEC,
    llm_chain.SPEC,
    conversation_chain.SPEC,
    retrieval_qa_chain.SPEC,
    conversational_retrieval_qa_chain.SPEC,
    buffer_memory.SPEC,
    buffer_window_memory.SPEC,
    prompt_template.SPEC,
    chat_prompt_template.SPEC,
    *record_manager.SPECS,
)

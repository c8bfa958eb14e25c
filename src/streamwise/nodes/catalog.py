"""The built-in nodes, listed explicitly: what a server can run unless it is given more."""

from __future__ import annotations

from streamwise.nodes.agents import tool_agent
from streamwise.nodes.chains import (
    conversation_chain,
    conversational_retrieval_qa_chain,
    llm_chain,
    retrieval_qa_chain,
)
from streamwise.nodes.embeddings import local_embeddings, ollama_embeddings, openai_embeddings
from streamwise.nodes.indexing import record_manager
from streamwise.nodes.loaders import (
    csv_file,
    docx_file,
    folder_files,
    json_file,
    pdf_file,
    plain_text,
    text_file,
)
from streamwise.nodes.memory import buffer_memory, buffer_window_memory
from streamwise.nodes.models import chat_local, chat_ollama, chat_openai
from streamwise.nodes.prompts import chat_prompt_template, prompt_template
from streamwise.nodes.spec import NodeSpec
from streamwise.nodes.splitters import character, markdown, recursive_character, token
from streamwise.nodes.tools import (
    calculator,
    chatflow_tool,
    current_datetime,
    custom_tool,
    mcp_tool,
    requests_tools,
    retriever_tool,
)
from streamwise.nodes.vectorstores import (
    chroma_vector_store,
    embedded_vector_store,
    faiss_vector_store,
    memory_vector_store,
)

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
    plain_text.SPEC,
    text_file.SPEC,
    pdf_file.SPEC,
    csv_file.SPEC,
    json_file.SPEC,
    docx_file.SPEC,
    folder_files.SPEC,
    recursive_character.SPEC,
    character.SPEC,
    markdown.SPEC,
    token.SPEC,
    local_embeddings.SPEC,
    openai_embeddings.SPEC,
    ollama_embeddings.SPEC,
    embedded_vector_store.SPEC,
    memory_vector_store.SPEC,
    faiss_vector_store.SPEC,
    chroma_vector_store.SPEC,
    tool_agent.SPEC,
    calculator.SPEC,
    current_datetime.SPEC,
    *requests_tools.SPECS,
    mcp_tool.SPEC,
    retriever_tool.SPEC,
    chatflow_tool.SPEC,
    chatflow_tool.LEGACY_SPEC,
    custom_tool.SPEC,
)

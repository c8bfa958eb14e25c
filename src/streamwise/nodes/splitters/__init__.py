"""Flowise's text splitter nodes, on langchain-text-splitters, cutting where LangChain JS cuts."""

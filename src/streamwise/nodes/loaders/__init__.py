"""Flowise's document loader nodes: plain text, text, PDF, CSV, JSON and DOCX files, and a folder."""

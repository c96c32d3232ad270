"""Fixtures of the LLM tests: the scripted OpenAI-compatible server."""

from tests.fixtures import llm_server as _scripted

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server

"""Fixtures of the LLM tests: the scripted OpenAI-compatible servers."""

from tests.fixtures import llm_server as _scripted

_llm_server_module = _scripted._llm_server_module
llm_server = _scripted.llm_server
_second_llm_server_module = _scripted._second_llm_server_module
second_llm_server = _scripted.second_llm_server

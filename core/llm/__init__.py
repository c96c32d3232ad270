"""LLM calls: one service (`LLMService`) in front of LiteLLM and the bundled local model.

Modules: `types` (requests, results, errors), `ssrf` (endpoint guard), `routing`
(fallback chains and cooldowns), `transports` (LiteLLM), `local` (llama.cpp),
`service` (limits, retries, failover, usage). CrewAI's `BaseLLM` on top of it lives in
`executor/crewai/llm.py`: CrewAI never enters core. Nothing here imports LiteLLM or
llama.cpp until a call needs it.
"""

"""LLM calls: one service (`LLMService`) in front of LiteLLM and the bundled local model.

Modules: `types` (requests, results, errors), `ssrf` (endpoint guard), `routing`
(fallback chains and cooldowns), `transports` (LiteLLM), `local` (llama.cpp),
`service` (limits, retries, failover, usage), `crewai_llm` (CrewAI's `BaseLLM` on top).
Nothing here imports LiteLLM, llama.cpp or CrewAI until a call needs it.
"""

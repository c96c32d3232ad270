"""Domain services: tenancy, auth, crypto, LLM routing, events, usage, rate limits."""

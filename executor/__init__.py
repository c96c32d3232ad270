"""Flow graph model, validation, engine, node types, CrewAI bridge."""

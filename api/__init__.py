"""HTTP API: FastAPI routers, dependencies, error mapping."""

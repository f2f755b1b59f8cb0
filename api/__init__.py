"""HTTP surface of the copilot (FastAPI)."""

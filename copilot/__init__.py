"""1v1 private-domain sales copilot."""

"""Authentication: API keys (admin sessions follow)."""

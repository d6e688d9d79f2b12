"""Helpers that give tests real servers (PostgreSQL, ...)."""

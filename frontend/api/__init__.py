"""Routers: one module per contract area, each thin (parse, call a service, shape)."""

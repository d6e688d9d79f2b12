"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from frontend.inference.triton import TritonClient
from frontend.settings import Settings


def settings(request: Request) -> Settings:
    return request.app.state.settings


def triton(request: Request) -> TritonClient:
    return request.app.state.triton


def request_id(request: Request) -> str:
    return request.state.request_id

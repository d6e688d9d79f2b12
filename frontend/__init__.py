"""The REST frontend: HTTP contracts in, Triton gRPC calls out.

    settings.py    every FACE_API_* setting, typed, in one place
    app.py         the FastAPI application (lifespan, routers, error handlers)
    middleware.py  X-Request-Id, early 413 for oversized bodies
    api/           routers, one per contract area; thin
    services/      what an endpoint does, between the routers and the parts below
    schemas/       the contract shapes (pydantic), field by field as documented
    imaging/       image decoding (TurboJPEG, Pillow-SIMD) and its limits
    inference/     the one module that talks to Triton
    observability/ Prometheus metrics (/metrics), the request log line, the console's last hour
    errors.py      the {"detail": ...} error contract (and FastAPI's list shape on /v1)
    openapi.py     the OpenAPI description's component names (two contracts, one document)
"""

__version__ = "0.2.0"

"""Triton's model repository API over HTTP: what is in the repository, load, unload.

The embedded server runs with explicit model control, so these calls are how
models come and go while it runs (``./face-api models reload``). A load blocks
until Triton has loaded the model (or refused it); loading a model that is
loaded already makes Triton load it again when its folder changed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


class Refused(RuntimeError):
    """Triton answered a repository call with an error (its message is the text)."""


class RepositoryApi:
    def __init__(self, http_port: int, host: str = "127.0.0.1", timeout_s: float = 600.0):
        self.base = f"http://{host}:{http_port}/v2/repository"
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict | None = None) -> object:
        request = urllib.request.Request(f"{self.base}{path}", data=json.dumps(body or {}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except ValueError:
                pass
            raise Refused(detail or f"HTTP {error.code}") from None
        return json.loads(text) if text.strip() else None

    def index(self) -> dict[str, str]:
        """Every model in the repository: name -> state (READY, UNAVAILABLE, LOADING, …;
        an empty string for one Triton was never asked to load)."""
        return {entry["name"]: entry.get("state", "") for entry in self._post("/index") or []}

    def ready(self) -> list[str]:
        return sorted(name for name, state in self.index().items() if state == "READY")

    def load(self, model: str) -> None:
        self._post(f"/models/{urllib.parse.quote(model, safe='')}/load")

    def unload(self, model: str) -> None:
        self._post(f"/models/{urllib.parse.quote(model, safe='')}/unload")

"""A budget of decoded pixels in flight, per worker: memory bounded by design.

A small upload can decode to a huge photo (a 143 KB PNG holds 7000×7000 pixels,
~150 MB as RGB, and more in the copies that inference and masking make). Each
request asks for its photo's pixels, read from the header *before* decoding,
and holds them until it has answered. Requests that do not fit wait their turn
(first come, first served, so a large photo is not starved by small ones) for a
short while, then get 503 with Retry-After; a photo larger than the whole
budget can never fit and gets 413 at once. Small photos (a tenth of the budget
or less: every ordinary photo) go ahead whenever they fit, so a queue of large
ones does not hold ordinary traffic up.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from frontend.errors import ApiError
from frontend.imaging.decode import header_size
from frontend.observability.context import when_answered


class PixelBudget:
    def __init__(self, limit: int, wait_s: float):
        self.limit = limit
        self.wait_s = wait_s
        self.small = limit // 10
        self.in_use = 0
        self._queue: deque[tuple[int, asyncio.Future]] = deque()

    def _fits(self, pixels: int) -> bool:
        return self.in_use + pixels <= self.limit

    def _wake(self) -> None:
        """Admit waiters that fit: in arrival order, small ones also past a large one that waits."""
        for entry in list(self._queue):
            pixels, waiter = entry
            at_head = entry is self._queue[0]
            if self._fits(pixels) and (at_head or pixels <= self.small):
                self._queue.remove(entry)
                self.in_use += pixels
                waiter.set_result(None)

    async def acquire(self, pixels: int) -> None:
        if pixels > self.limit:
            raise ApiError(413, f"the photo has {pixels} pixels, more than this server decodes at once "
                                f"({self.limit}, FACE_API_PIXEL_BUDGET)")
        if self._fits(pixels) and (not self._queue or pixels <= self.small):
            self.in_use += pixels
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (pixels, waiter)
        self._queue.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.wait_s)
        except TimeoutError:
            if waiter.done():
                return  # admitted just as the wait ran out: keep it
            self._leave(entry)
            raise ApiError(503, "too many large photos are being processed; try again shortly",
                           {"Retry-After": str(max(1, math.ceil(self.wait_s)))}) from None
        except asyncio.CancelledError:  # the client went away
            if waiter.done():
                self.release(pixels)
            else:
                self._leave(entry)
            raise

    def _leave(self, entry: tuple[int, asyncio.Future]) -> None:
        self._queue.remove(entry)
        entry[1].cancel()
        self._wake()  # a large photo leaving the head of the queue may let others in

    def release(self, pixels: int) -> None:
        self.in_use -= pixels
        self._wake()

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        await self.acquire(pixels)
        try:
            yield
        finally:
            self.release(pixels)


# One budget per worker process, set up by the app at start (frontend/app.py).
_budget: PixelBudget | None = None


def configure(limit: int, wait_s: float) -> PixelBudget:
    global _budget
    _budget = PixelBudget(limit, wait_s)
    return _budget


async def admit(pixels: int) -> None:
    """Take ``pixels`` from this worker's budget until the request being served is answered
    (waiting, 503 or 413 as PixelBudget says). Nothing to do without a budget or a request."""
    budget = _budget
    if budget is None or pixels <= 0:
        return
    await budget.acquire(pixels)
    if not when_answered(lambda: budget.release(pixels)):
        budget.release(pixels)  # outside a request nothing would give them back: don't keep them


async def admit_upload(data: bytes, max_pixels: int,
                       decoded_size: Callable[[int, int], tuple[int, int]] | None = None) -> None:
    """Admit the photo in ``data`` by the pixels it will decode to, read from its header alone
    (``decoded_size`` maps the stored size to a reduced decode's). An unreadable header or a
    photo over FACE_API_MAX_IMAGE_PIXELS takes nothing: the decoder refuses it at once."""
    size = header_size(data)
    if size is None or size[0] * size[1] > max_pixels:
        return
    width, height = decoded_size(*size) if decoded_size is not None else size
    await admit(width * height)

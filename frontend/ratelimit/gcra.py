"""The generic cell rate algorithm (GCRA): "N per period" with no window edges.

Each caller has one number, its theoretical arrival time (TAT): when it would
next be allowed if it had spent its whole allowance evenly. A request is let
through when, after adding one emission interval (period / N), the TAT is at
most one period ahead of now. So a fresh caller may send N requests at once
and then one every period / N; unlike fixed windows there is no boundary where
2N requests get through, and unlike sliding logs one float per caller is kept.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"^\s*([1-9][0-9]*)\s*/\s*(second|minute|hour|day)\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'300/minute' -> Rate(300, 60.0); ValueError for anything else."""
        match = _RATE.match(text)
        if not match:
            raise ValueError(f"invalid rate {text!r}: expected 'N/second|minute|hour|day', e.g. '300/minute'")
        return cls(int(match.group(1)), PERIODS[match.group(2)])

    @property
    def interval_s(self) -> float:
        return self.period_s / self.count

    def __str__(self) -> str:
        unit = next(name for name, seconds in PERIODS.items() if seconds == self.period_s)
        return f"{self.count}/{unit}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int  # requests that would still pass right now
    retry_after_s: float  # 0 when allowed; else when the next one will pass
    reset_after_s: float  # when the full allowance is back


def decide(tat: float | None, now: float, rate: Rate) -> tuple[Decision, float | None]:
    """One request at ``now`` against stored ``tat``: (decision, TAT to store, None = unchanged)."""
    interval = rate.interval_s
    # Times are epoch seconds (~1.8e9), where a double resolves only ~2e-7 s: compare
    # with a slack of a thousandth of an interval so round-off never costs a request.
    slack = interval * 1e-3
    tat = now if tat is None or tat < now else tat
    new_tat = tat + interval
    if new_tat - now <= rate.period_s + slack:
        remaining = math.floor((rate.period_s - (new_tat - now)) / interval + 1e-3)
        return Decision(True, rate.count, max(0, remaining), 0.0, new_tat - now), new_tat
    retry_after = new_tat - rate.period_s - now
    return Decision(False, rate.count, 0, retry_after, tat - now), None

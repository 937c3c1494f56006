"""The one way the engine waits for something with a deadline: Graph showing a write (replication lag),
a tenant settling after a cut-over, a run finishing under a command. Imports no feature code.

    deadline = Deadline(seconds, every=0.5, backoff=2, cap=10)
    while not done():
        pause = deadline.next_pause()
        if pause is None:
            ...  # time is up: say what did not happen
        time.sleep(pause)  # or `await asyncio.sleep(pause)`
"""

from __future__ import annotations

import time

# Never sleep less than this near the end: a last read right at the deadline is worth one more try.
SHORTEST_PAUSE = 0.05


class Deadline:
    """`seconds` from now (None: no deadline), with pauses that start at `every` and grow by `backoff`
    up to `cap`; the last pause is cut to end at the deadline, so the last read is made on time."""

    def __init__(
        self, seconds: float | None, *, every: float = 1.0, backoff: float = 1.0, cap: float | None = None
    ) -> None:
        self.ends = None if seconds is None else time.monotonic() + seconds
        self._pause = every
        self._backoff = backoff
        self._cap = cap if cap is not None else every

    def left(self) -> float:
        """Seconds until the deadline (infinite without one; never below 0)."""
        return float("inf") if self.ends is None else max(0.0, self.ends - time.monotonic())

    def passed(self) -> bool:
        return self.left() <= 0

    def next_pause(self) -> float | None:
        """How long to pause before the next try, or None when the deadline has passed."""
        left = self.left()
        if left <= 0:
            return None
        pause = min(self._pause, max(SHORTEST_PAUSE, left))
        self._pause = min(self._pause * self._backoff, max(self._cap, self._pause))
        return pause

"""The one deadline helper every wait in the engine uses (migrations_engine/waiting.py)."""

from __future__ import annotations

import time

from migrations_engine.waiting import SHORTEST_PAUSE, Deadline


def test_pauses_grow_to_the_cap_and_the_last_one_ends_at_the_deadline():
    deadline = Deadline(3.0, every=0.5, backoff=2, cap=1.5)
    pauses = [deadline.next_pause() for _ in range(4)]
    assert pauses == [0.5, 1.0, 1.5, 1.5]
    deadline = Deadline(0.2, every=1.0)
    first = deadline.next_pause()
    assert first is not None and SHORTEST_PAUSE <= first <= 0.2  # cut to end at the deadline


def test_a_passed_deadline_gives_no_pause_and_none_never_passes():
    deadline = Deadline(0.01, every=1.0)
    time.sleep(0.02)
    assert deadline.passed() and deadline.next_pause() is None
    endless = Deadline(None, every=0.25)
    assert not endless.passed() and endless.next_pause() == 0.25 and endless.left() == float("inf")

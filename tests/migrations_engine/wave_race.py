"""One process of test_waves' scheduler race, stepped through slot times on command.

    python -m tests.migrations_engine.wave_race scheduler NAME   (or: worker NAME)

It waits for commands on the Redis list `wave-race:NAME` ({"at": ISO time, "waves": [pk, ...]} or
{"op": "stop"}), moves its clock to `at` with time-machine, does its part, and pushes an ack to
`wave-race:ack`. A *scheduler* registers the waves' schedules as a scheduler process does when it starts,
then moves due jobs to the queue with rq-scheduler's own `enqueue_jobs` (taking no lock: as if the lock
had failed). A *worker* runs a real rq SimpleWorker in burst mode.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time


def main(role: str, name: str) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msp_console.settings")
    import django

    django.setup()
    import django_rq
    import time_machine
    from rq import SimpleWorker
    from rq_scheduler import Scheduler

    from migrations_engine.waves import services as waves

    queue = django_rq.get_queue("default")
    conn = queue.connection
    idle_since = time.monotonic()
    while True:
        # Short waits: the connection's socket timeout is shorter than a long BLPOP.
        popped = conn.blpop([f"wave-race:{name}"], timeout=1)
        if popped is None:
            if time.monotonic() - idle_since > 120:
                return 2  # the test went away
            continue
        idle_since = time.monotonic()
        command = json.loads(popped[1])
        if command.get("op") == "stop":
            return 0
        moment = datetime.datetime.fromisoformat(command["at"])
        with time_machine.travel(moment, tick=True):
            if role == "scheduler":
                for pk in command["waves"]:
                    waves.schedule_fire(pk)
                before = queue.count
                Scheduler(queue=queue, connection=conn).enqueue_jobs()
                report = {"moved": queue.count - before}
            else:
                SimpleWorker([queue], connection=conn).work(burst=True)
                report = {}
        conn.rpush("wave-race:ack", json.dumps({"name": name, **report}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

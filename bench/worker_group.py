"""A group of RQ workers in a process tree of its own, the throughput bench's stand-in for another
machine: the workers share only Redis (queue and Graph pacing) and the database with other groups.

    python bench/worker_group.py COUNT python manage.py rqworker ... --name bench-x-{n}

starts COUNT copies of the command ({n} = 1..COUNT) and waits for them. SIGTERM and SIGINT are passed
on to each worker (the first asks an RQ worker to finish its job, a second to stop now)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def main() -> int:
    count, command = int(sys.argv[1]), sys.argv[2:]
    workers = [subprocess.Popen([a.replace("{n}", str(n)) for a in command]) for n in range(1, count + 1)]

    def pass_on(signum, _frame) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum if signum == signal.SIGTERM else signal.SIGTERM)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    while any(w.poll() is None for w in workers):
        time.sleep(0.2)
    return max(w.returncode or 0 for w in workers)


if __name__ == "__main__":
    sys.exit(main())

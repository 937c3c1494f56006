"""Run a Python script under cProfile timed by CPU, not wall clock (`--profile` of the throughput bench):

    python bench/cpu_profile.py OUT.prof manage.py rqworker default ...

Waiting on Graph, Redis or the database costs no CPU, so the profile shows only our own work. The stats
are written when the script exits, also by SystemExit (an RQ worker's warm shutdown)."""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, script = sys.argv[1], sys.argv[2]
    sys.argv = sys.argv[2:]
    sys.path.insert(0, ".")
    profile = cProfile.Profile(time.process_time)
    try:
        profile.runcall(runpy.run_path, script, run_name="__main__")
    except SystemExit:
        pass
    finally:
        profile.dump_stats(out)


if __name__ == "__main__":
    main()

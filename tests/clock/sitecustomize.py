"""Moves the wall clock of every Python process started with this directory on PYTHONPATH.

`make test` runs the suite a second time with `AIRTICKET_CLOCK` set (an ISO date-time), to
prove that no test depends on the day or the hour it runs. Python imports `sitecustomize` at
start-up, so the pytest workers and every child they start (moto server, the local system,
gunicorn) see the moved clock. `time-machine` moves only the wall clock: monotonic time, and
with it every timeout and `Event.wait`, is untouched (libfaketime hangs those here).
"""

import os

if when := os.environ.get("AIRTICKET_CLOCK"):
    import time
    from datetime import datetime

    import time_machine

    # The first process fixes the shift; its children inherit it, so every process of the
    # run reads the same moved clock (a child started later is not sent back to the start).
    if "AIRTICKET_CLOCK_SHIFT" not in os.environ:
        target = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
        os.environ["AIRTICKET_CLOCK_SHIFT"] = repr(target - time.time())
    # tick=True: the moved clock runs on, as a real one does.
    time_machine.travel(time.time() + float(os.environ["AIRTICKET_CLOCK_SHIFT"]), tick=True).start()

"""The detached sweep driver: `python -m tuneforge.sweeps.driver SWEEP_ID` advances the sweep until it ends.

Started in its own session by `sweep run` when trials are left to submit later (cloud sweeps wider than
max_parallel), like the local job supervisor; it survives the CLI that started it. It only ever calls
schedule.advance, which status calls also use, so nothing is lost if it dies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from .. import paths
from .schedule import advance

#: seconds between two advances (a cloud trial takes minutes; TUNEFORGE_SWEEP_POLL_SECONDS for tests)
POLL_SECONDS = 30.0


def spawn(sweep_id: str) -> int:
    log = paths.home() / "sweeps" / f"{sweep_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tuneforge.sweeps.driver", sweep_id], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc.pid


def main(argv: list[str]) -> int:
    sweep_id = argv[0]
    poll = float(os.environ.get("TUNEFORGE_SWEEP_POLL_SECONDS") or POLL_SECONDS)
    while True:
        try:
            sweep = advance(sweep_id)
        except Exception as exc:  # noqa: BLE001 - keep driving: a Hub hiccup must not end the sweep
            print(f"{time.strftime('%H:%M:%S')} advance failed: {type(exc).__name__}: {exc}", flush=True)
        else:
            if sweep.terminal:
                print(f"{time.strftime('%H:%M:%S')} {sweep.stage}: {sweep.message}", flush=True)
                return 0
        time.sleep(poll)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

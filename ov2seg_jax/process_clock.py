"""How long this process has existed: what a user waits before the first frame of a prediction."""

from __future__ import annotations

import os


def process_age_s() -> float | None:
    """Seconds since this process started (interpreter start-up and imports included), read from
    ``/proc``; None where ``/proc`` does not say (not Linux)."""
    try:
        with open("/proc/self/stat") as f:
            after_name = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(after_name[19])  # field 22, starttime, in clock ticks since boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None

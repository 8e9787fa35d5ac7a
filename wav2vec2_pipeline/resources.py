"""This machine's memory: what is available before a run, and the peak a run reached."""

import contextlib
import resource
from pathlib import Path

from wav2vec2_pipeline.errors import PipelineError

GIB = 1 << 30


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, capped by a cgroup v2 memory limit; None where neither is readable."""
    available = None
    with contextlib.suppress(OSError, ValueError, StopIteration):
        lines = Path("/proc/meminfo").read_text().splitlines()
        available = int(next(line.split()[1] for line in lines if line.startswith("MemAvailable:"))) * 1024
    with contextlib.suppress(OSError, ValueError):
        limit, used = (Path("/sys/fs/cgroup", name).read_text().strip() for name in ("memory.max", "memory.current"))
        if limit != "max":
            left = int(limit) - int(used)
            available = left if available is None else min(available, left)
    return available


def check_fits(needed_bytes: int, what: str, advice: str) -> None:
    """Refuse work that cannot fit in memory before it starts, rather than fail (or swap) half-way."""
    available = available_memory_bytes()
    if available is not None and needed_bytes > available:
        raise PipelineError(
            f"{what} needs at least {needed_bytes / GIB:.1f} GiB of memory; {available / GIB:.1f} GiB is "
            f"available here. {advice}"
        )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

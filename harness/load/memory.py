"""Whether a fleet fits this machine's memory, estimated before anything is allocated."""

from __future__ import annotations

from pathlib import Path

from harness.config.errors import InputError
from harness.load.schedule import BYTES_PER_MACHINE
from harness.model.fleet import BUILD_CHUNK, BYTES_PER_MACHINE_STATE

PER_MACHINE = BYTES_PER_MACHINE_STATE + BYTES_PER_MACHINE
BUILD_BYTES = BUILD_CHUNK * 80 + 150_000_000  # the build's temporary arrays, Locust and the identity pools
MAX_MACHINES = (1 << 32) - 1  # machines are numbered in 32 bits


def available_bytes() -> int:
    """Memory this process may still take: what the kernel calls available, within any cgroup limit."""
    available = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemAvailable:"))
    limit, usage = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    if limit.is_file() and usage.is_file() and limit.read_text().strip() != "max":
        available = min(available, int(limit.read_text()) - int(usage.read_text()))
    return available


def estimate_bytes(machines: int) -> int:
    return machines * PER_MACHINE + BUILD_BYTES


def check_numbering(machines: int, field: str) -> None:
    """Refuse a fleet with more machines than 32-bit machine numbers can name."""
    if machines > MAX_MACHINES:
        raise InputError(field, f"{machines:,} machines are more than the {MAX_MACHINES:,} a fleet can number",
                         "give a smaller fleet; it can stand for more real machines (fleet.real_machines)")


def check_fits(machines: int, field: str, available: int | None = None) -> None:
    """Refuse, naming `field`, a fleet whose estimated memory exceeds what is available."""
    check_numbering(machines, field)
    available = available_bytes() if available is None else available
    needed = estimate_bytes(machines)
    if needed > available:
        raise InputError(field, f"{machines:,} machines need about {needed / 1e9:,.1f} GB ({PER_MACHINE} bytes "
                         f"each, plus {BUILD_BYTES / 1e9:.1f} GB to build them); {available / 1e9:,.1f} GB is "
                         "available", "give a smaller fleet, or spread it over workers on more machines")

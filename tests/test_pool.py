"""The agent pool: small to start, grown only while check-ins run late and the CPU has room."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.load.pool import MIN_POOL, SATURATED_CPU, AgentPool, BusyMeter


def test_the_pool_starts_from_the_rate_for_a_loopback_server_and_never_below_the_minimum() -> None:
    assert AgentPool(12_000).size == 48  # 12,000/s x 2 ms x 2
    assert AgentPool(200).size == MIN_POOL


def test_late_check_ins_grow_the_pool_by_half_while_the_cpu_has_room() -> None:
    pool = AgentPool(12_000)
    assert pool.adjust(late=0, cpu_share=0.3) == 48
    assert pool.adjust(late=5, cpu_share=0.3) == 72
    assert pool.adjust(late=5, cpu_share=SATURATED_CPU) == 72  # CPU-bound: more agents would only share it
    assert pool.adjust(late=0, cpu_share=0.3) == 72  # it never shrinks


def test_the_pool_grows_no_further_than_a_one_second_server_needs_and_a_fixed_pool_never_moves() -> None:
    pool = AgentPool(200)
    for _ in range(50):
        pool.adjust(late=1, cpu_share=0.1)
    assert pool.size == 200
    fixed = AgentPool(12_000, users=50)
    assert fixed.adjust(late=100, cpu_share=0.1) == 50


@pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="this kernel keeps no scheduler statistics")
def test_a_sender_sharing_its_core_with_another_busy_process_counts_as_saturated() -> None:
    core, allowed = {min(os.sched_getaffinity(0))}, os.sched_getaffinity(0)
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(competitor.pid, core)
        os.sched_setaffinity(0, core)  # this thread only
        time.sleep(0.2)  # the competitor spins
        meter, own_cpu, started = BusyMeter(), time.thread_time(), time.monotonic()
        while time.monotonic() - started < 1.0:
            pass
        own = (time.thread_time() - own_cpu) / (time.monotonic() - started)
        busy = meter.share()
    finally:
        os.sched_setaffinity(0, allowed)
        competitor.kill()
        competitor.wait()
    assert own < 0.8  # its own CPU time would say it has room
    assert busy > SATURATED_CPU  # it was running or waiting for the core all along


def test_a_sender_that_waits_has_room() -> None:
    meter = BusyMeter()
    time.sleep(0.3)
    assert meter.share() < 0.2

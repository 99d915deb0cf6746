"""The agent pool: small to start, grown only while check-ins run late and the CPU has room."""

from __future__ import annotations

from harness.load.pool import MIN_POOL, SATURATED_CPU, AgentPool


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

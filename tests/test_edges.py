"""The pure rules behind the edges of a run: a server's Retry-After, harness errors and the exit code."""

from __future__ import annotations

from email.utils import formatdate

import numpy as np
import pytest

from harness.config.errors import ExitCode
from harness.config.schema import ThresholdRule
from harness.measure.metrics import MAX_REASONS, Metrics
from harness.measure.span import Span, observed
from harness.measure.thresholds import Verdict, parse_threshold
from harness.output.summary import exit_code
from harness.protocols.base import retry_after, retry_after_clock
from harness.protocols.omaha import retry_after_omaha


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "60"}, 60.0), ({"retry-after": "5"}, 5.0), ({"Retry-After": "-3"}, 0.0),
    ({"Retry-After": "soon"}, None), ({}, None),
])
def test_retry_after_reads_seconds_in_either_case(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_reads_an_http_date_as_the_wall_seconds_until_then() -> None:
    import time

    assert retry_after({"Retry-After": formatdate(time.time() + 120, usegmt=True)}) == pytest.approx(120, abs=2)
    assert retry_after({"Retry-After": formatdate(time.time() - 120, usegmt=True)}) == 0.0
    assert retry_after_omaha({"Retry-After": formatdate(time.time() + 3 * 86400, usegmt=True)}) == 86400.0


def test_a_servers_retry_after_is_wall_time_unless_it_says_it_plays_the_scenarios_clock() -> None:
    assert retry_after_clock({"Retry-After": "60"}) == "wall"
    assert retry_after_clock({"Retry-After": "60", "Fleetstorm-Clock": "scenario"}) == "scenario"
    assert retry_after_clock({"retry-after": "60", "fleetstorm-clock": "Scenario"}) == "scenario"


def test_harness_errors_keep_a_bounded_number_of_reasons_and_merge_exactly() -> None:
    worker, master = Metrics(), Metrics()
    for i in range(MAX_REASONS + 5):
        worker.record_harness_error("adapter", f"ValueError: bad answer {i}")
    worker.record_harness_error("target", "unknown update 'xpsp3'", 3)
    # past MAX_REASONS distinct reasons, the rest are "other reasons" of their source
    assert worker.harness_errors["adapter: other reasons"] == 5 and worker.harness_errors["target: other reasons"] == 3
    assert len(worker.harness_errors) == MAX_REASONS + 2
    master.merge(worker.drain().encode())
    assert sum(master.harness_errors.values()) == MAX_REASONS + 5 + 3 and not worker.harness_errors


def test_unfinished_check_ins_enter_the_latency_at_their_age_and_count_by_where_they_were() -> None:
    metrics = Metrics()
    metrics.record_checkin(0.002, ok=True)
    metrics.record_unfinished("in_flight", np.array([6.0, 5.0]))
    metrics.record_unfinished("backlog", np.array([0.5]))
    assert metrics.counters["unfinished"] == 3 and metrics.counters["unfinished_in_flight"] == 2
    assert metrics.counters["checkins"] == 1  # done ones only
    assert metrics.max_latency_ms() == pytest.approx(6000, rel=0.001)
    span = Span(metrics, duration_s=10.0)
    threshold = parse_threshold(ThresholdRule("checkins.unfinished == 0"), "test")
    assert observed(span, threshold.key) == 3 and not threshold.passes(3)


PASSED, FAILED = Verdict("a", 1.0, True), Verdict("b", 1.0, False)


@pytest.mark.parametrize(("verdicts", "errors", "aborted", "code"), [
    ([PASSED], {}, False, ExitCode.PASSED),
    ([PASSED, FAILED], {}, False, ExitCode.THRESHOLD_FAILED),
    ([PASSED], {}, True, ExitCode.THRESHOLD_FAILED),
    ([PASSED], {"target: unknown update 'xpsp3'": 4}, False, ExitCode.THRESHOLD_FAILED),
    ([PASSED], {"adapter: KeyError: 'x'": 1}, False, ExitCode.THRESHOLD_FAILED),
    ([PASSED], {"adapter: KeyError: 'x'": 1, "harness: ZeroDivisionError: x": 1}, False, ExitCode.HARNESS_ERROR),
])
def test_a_run_with_harness_errors_never_exits_0_and_fleetstorms_own_bugs_exit_3(
        verdicts: list[Verdict], errors: dict[str, int], aborted: bool, code: ExitCode) -> None:
    assert exit_code(verdicts, errors, aborted) == code

"""Thresholds: a strict grammar, exact merged percentiles, windows, scenario-time checks, JUnit output."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from harness.config.errors import InputError
from harness.config.pace import Pace
from harness.config.schema import ThresholdRule
from harness.measure.judge import Judge
from harness.measure.metrics import Metrics
from harness.measure.span import Span, observed
from harness.measure.thresholds import Threshold, Verdict, parse_threshold
from harness.output.junit import junit_xml


def parse(expr: str, **options: object) -> Threshold:
    return parse_threshold(ThresholdRule(expr, **options), "smoke.toml: thresholds")


@pytest.mark.parametrize(
    ("expr", "key", "op", "value"),
    [
        ("check.p95 < 400ms", "check.p95", "<", 400.0),
        ("check.p99 <= 1s", "check.p99", "<=", 1000.0),
        ("check.p99.9 < 2s", "check.p99.9", "<", 2000.0),
        ("check.p50 < 20", "check.p50", "<", 20.0),
        ("check.rps >= 2.5K", "check.rps", ">=", 2500.0),
        ("errors.ratio < 1%", "errors.ratio", "<", 0.01),
        ("errors.ratio < 0.02", "errors.ratio", "<", 0.02),
        ("download.goodput >= 200MB/s", "download.goodput", ">=", 200e6),
        ("fleet.sp2_installed >= 100M", "fleet.installed.xpsp2", ">=", 100e6),
        ("fleet.installed.m143 >= 1M", "fleet.installed.m143", ">=", 1e6),
        ("fleet.delivered.xpsp2 >= 19M", "fleet.delivered.xpsp2", ">=", 19e6),
        ("fleet.site_installed.xpsp2 > 0", "fleet.site_installed.xpsp2", ">", 0.0),
        ("fleet.coverage.kb884020 >= 75%", "fleet.coverage.kb884020", ">=", 0.75),
        ("fleet.kb884020_coverage >= 75%", "fleet.coverage.kb884020.among.xpsp2", ">=", 0.75),
        ("schedule.late == 0", "schedule.late", "==", 0.0),
        ("server.http_503.ratio < 5%", "server.http_503.ratio", "<", 0.05),
        ("report.count > 3B", "report.count", ">", 3e9),
        ("check.http_503.ratio < 20%", "check.http_503.ratio", "<", 0.2),
        ("check.http_503.count <= 1K", "check.http_503.count", "<=", 1000.0),
    ],
)
def test_expressions_parse_into_key_operator_and_value_in_base_units(expr: str, key: str, op: str,
                                                                     value: float) -> None:
    threshold = parse(expr)
    assert (threshold.key, threshold.op, threshold.value) == (key, op, pytest.approx(value))
    assert not threshold.real and threshold.window_s is None and threshold.at is None


def test_windows_dates_real_figures_and_options_parse() -> None:
    windowed = parse("check.p99 < 1s over 30s", abort_on_fail=True, delay_s=10.0)
    assert (windowed.window_s, windowed.abort_on_fail, windowed.delay_s) == (30.0, True, 10.0)
    dated = parse("real.fleet.sp2_installed >= 100M at 2004-10-18")
    assert dated.real and dated.key == "fleet.installed.xpsp2"
    assert dated.at == datetime(2004, 10, 18, tzinfo=UTC)
    stretch = parse("check.http_503.ratio < 20% between 2004-09-21 and 2004-09-22T12:00")
    assert stretch.between == (datetime(2004, 9, 21, tzinfo=UTC), datetime(2004, 9, 22, 12, tzinfo=UTC))


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("check.p95", "is not METRIC.STAT OP VALUE"),
        ("check.p95 <<3ms", "is not a value for check.p95"),
        ("check.p95 < fast", "is not a value for check.p95"),
        ("chekc.p95 < 3ms", "unknown metric 'chekc.p95'"),
        ("check.p95x < 3ms", "unknown metric 'check.p95x'"),
        ("check.goodput > 1MB/s", "goodput is measured on download only"),
        ("errors.ratio < lots", "is not a value for errors.ratio"),
        ("download.goodput > 5 parsecs", "is not METRIC.STAT OP VALUE"),
        ("fleet.sp3_installed > 5", "unknown fleet metric 'fleet.sp3_installed'"),
        ("real.check.p95 < 3ms", "check.p95 has no real-world equivalent"),
        ("check.p99 < 1s over soon", "window 'soon' is not a duration"),
        ("check.p99 < 1s over 0.5s", "the window is shorter than 1 s"),
        ("fleet.sp2_installed > 5 at someday", "'someday' is not a date"),
        ("fleet.sp2_installed > 5 over 5s at 2004-10-18", "takes one of `over`, `at` and `between`"),
        ("check.p99 < 1s between 2004-09-22 and 2004-09-21", "2004-09-21 is not after 2004-09-22"),
        ("check.p99 < 1s between 2004-09-21 and later", "'later' is not a date"),
        ("server.http_503.ratio < 5% between 2004-09-21 and 2004-09-22", "write check.http_503.ratio"),
        ("fleet.coverage.kb884020 > 5% between 2004-09-21 and 2004-09-22", "not taken at scenario dates"),
        ("real.check.http_503.ratio < 5%", "has no real-world equivalent"),
        ("server.http_5xx.ratio < 1%", "unknown metric 'server.http_5xx.ratio'"),
    ],
)
def test_a_malformed_expression_names_the_wrong_part(expr: str, message: str) -> None:
    with pytest.raises(InputError) as error:
        parse(expr)
    assert message in str(error.value)
    assert str(error.value).startswith("smoke.toml: thresholds:")


def _metrics(latencies_ms: list[float], failures: int = 0) -> Metrics:
    metrics = Metrics()
    for i, latency in enumerate(latencies_ms):
        metrics.record_checkin(latency / 1000, ok=i >= failures)
        metrics.record_request("check", latency, failed=i < failures)
    return metrics


def test_merged_histograms_equal_the_histogram_of_the_union() -> None:
    rng = random.Random(3)
    parts = [[rng.lognormvariate(2, 1) for _ in range(2000)] for _ in range(3)]
    union = _metrics([x for part in parts for x in part])
    merged = Metrics()
    for part in parts:
        merged.merge(_metrics(part).encode())
    for stat in ("p50", "p95", "p99", "p99.9", "max", "min"):
        assert observed(Span(merged, 1.0), f"check.{stat}") == observed(Span(union, 1.0), f"check.{stat}")
    assert merged.counters == union.counters


def test_a_window_threshold_fails_when_any_window_fails_and_reports_the_worst() -> None:
    threshold = parse("check.p99 < 100ms over 2s")
    judge = Judge((threshold,))
    totals = Metrics()
    per_second = [[10.0] * 50, [10.0] * 50, [10.0] * 50, [500.0] * 50, [10.0] * 50, [10.0] * 50, [10.0] * 50]
    for second, latencies in enumerate(per_second):
        delta = _metrics(latencies)
        totals.add(delta)
        judge.feed(delta, float(second), Span(totals, second))
    verdict = judge.verdict(threshold, Span(totals, 7.0), final=True)
    assert not verdict.passed
    assert verdict.observed == pytest.approx(500.0, rel=0.01)
    assert verdict.detail == "1 of 3 windows failed"
    assert observed(Span(totals, 7.0), "check.p95") == pytest.approx(500.0, rel=0.01)  # the run as a whole


def test_a_window_threshold_waits_for_its_delay() -> None:
    threshold = parse("check.p99 < 100ms over 1s", delay_s=3.0)
    judge = Judge((threshold,))
    totals = Metrics()
    for second, latency in enumerate([900.0, 900.0, 900.0, 10.0, 10.0, 10.0]):
        delta = _metrics([latency] * 10)
        totals.add(delta)
        judge.feed(delta, float(second), Span(totals, second))
    verdict = judge.verdict(threshold, Span(totals, 6.0), final=True)
    assert (verdict.passed, verdict.detail) == (True, "0 of 2 windows failed")
    assert verdict.observed == pytest.approx(10.0, rel=0.01)


def test_an_at_threshold_takes_the_value_at_its_date_not_the_next_tick_s() -> None:
    threshold = parse("real.fleet.sp2_installed >= 1K at 2004-08-18T03:00")
    judge = Judge((threshold,), Pace(3600.0 * 37))  # a tick is 37 scenario hours
    totals, at_date = Metrics(), Metrics()
    at_date.count("installed_xpsp2", 10)  # what was installed up to 03:00, between two ticks
    for tick, installed in enumerate([0, 8, 24]):
        totals.count("installed_xpsp2", installed - totals.counters["installed_xpsp2"])
        reached = {threshold.at: Span(at_date, 0.0, weight=100.0)} if tick == 2 else {}
        judge.feed(Metrics(), float(tick), Span(totals, tick, weight=100.0), reached)
    verdict = judge.verdict(threshold, Span(totals, 3.0, weight=100.0), final=True)
    assert verdict.observed == 1000.0  # 10 machines x 100 at 03:00, not the 2,400 of the tick after it
    assert verdict.passed


def test_an_at_threshold_keeps_the_first_value_it_is_given_for_its_date() -> None:
    threshold = parse("fleet.sp2_installed >= 1 at 2004-08-18T03:00")
    judge = Judge((threshold,))
    early, late = Metrics(), Metrics()
    early.count("installed_xpsp2", 3)
    late.count("installed_xpsp2", 5)
    judge.feed(Metrics(), 1.0, Span(Metrics(), 1.0), {threshold.at: Span(early, 1.0)})
    judge.feed(Metrics(), 2.0, Span(Metrics(), 2.0), {threshold.at: Span(late, 1.0)})
    assert judge.verdict(threshold, Span(Metrics(), 2.0), final=True).observed == 3.0


def test_an_at_threshold_whose_date_the_run_never_reached_fails_at_the_end() -> None:
    threshold = parse("fleet.sp2_installed >= 1 at 2004-10-18")
    judge = Judge((threshold,))
    judge.feed(Metrics(), 1.0, Span(Metrics(), 1.0))
    assert judge.verdict(threshold, Span(Metrics(), 1.0), final=False).passed  # still pending
    final = judge.verdict(threshold, Span(Metrics(), 1.0), final=True)
    assert not final.passed and "did not reach 2004-10-18" in final.detail


def test_a_between_threshold_judges_only_what_was_measured_between_its_dates() -> None:
    threshold = parse("check.http_503.ratio < 20% between 2004-09-21 and 2004-09-22")
    latency = parse("check.p99 < 100ms between 2004-09-21 and 2004-09-22")
    judge = Judge((threshold, latency))
    since, until = _metrics([5.0] * 90), _metrics([5.0] * 90)  # 90 quiet check-ins before the stretch
    for _ in range(10):
        until.record_checkin(0.5, ok=False)  # then 10 refused in it, 500 ms late, among 20
        until.record_request("check", 1.0, failed=True)
        until.count("http_503")
    until.add(_metrics([5.0] * 10))
    whole = Span(until, 3.0)
    judge.feed(Metrics(), 1.0, whole, {threshold.between[0]: Span(since, 1.0)})
    assert judge.verdict(threshold, whole, final=False).observed is None  # pending until its end is reached
    judge.feed(Metrics(), 2.0, whole, {threshold.between[0]: Span(since, 1.0), threshold.between[1]: Span(until, 2.0)})
    verdict = judge.verdict(threshold, whole, final=True)
    assert verdict.observed == pytest.approx(0.5) and not verdict.passed  # 10 of 20, not diluted to 10 of 110
    assert observed(whole, "check.http_503.ratio") == pytest.approx(10 / 110)
    assert judge.verdict(latency, whole, final=True).observed == pytest.approx(500, rel=0.01)


def test_a_between_threshold_whose_end_the_run_never_reached_fails_at_the_end() -> None:
    threshold = parse("check.http_503.ratio < 20% between 2004-09-21 and 2004-09-22")
    judge = Judge((threshold,))
    judge.feed(Metrics(), 1.0, Span(Metrics(), 1.0), {threshold.between[0]: Span(Metrics(), 1.0)})
    final = judge.verdict(threshold, Span(Metrics(), 1.0), final=True)
    assert not final.passed and "did not reach 2004-09-22" in final.detail


def test_abort_on_fail_names_the_threshold_only_after_its_delay() -> None:
    threshold = parse("errors.ratio < 10%", abort_on_fail=True, delay_s=5.0)
    judge = Judge((threshold,))
    broken = Span(_metrics([1.0] * 10, failures=5), 3.0)
    assert judge.abort_reason(broken, wall_s=3.0) is None
    assert judge.abort_reason(broken, wall_s=6.0) == "errors.ratio < 10%"


def test_real_world_rates_scale_by_weight_and_time_scale() -> None:
    metrics = _metrics([1.0] * 720)
    span = Span(metrics, duration_s=1.0, weight=10.0, scenario_s=720.0)
    assert observed(span, "check.rps") == 720.0
    assert observed(span, "check.rps", real=True) == pytest.approx(10.0)
    assert observed(span, "check.count", real=True) == 7200.0


def test_a_window_judges_real_world_rates_at_the_time_scale_its_seconds_played() -> None:
    threshold = parse("real.check.rps >= 1 over 2s")  # one real-world check-in per second, in every window
    judge = Judge((threshold,), Pace(3600.0, ((7200.0, 60.0),)))  # 2 wall seconds at 3600x, then 60x
    totals = Metrics()
    for second in range(5):  # 120 check-ins a wall second: 1/30 a real second at 3600x, 2 at 60x
        delta = _metrics([1.0] * 120)
        totals.add(delta)
        judge.feed(delta, float(second), Span(totals, second))
    verdict = judge.verdict(threshold, Span(totals, 4.0), final=True)
    assert verdict.detail == "1 of 2 windows failed"
    assert verdict.observed == pytest.approx(1 / 30)  # the window at 3600x


def test_junit_has_one_testcase_per_threshold_and_marks_failures() -> None:
    verdicts = [Verdict("check.p95 < 400ms", 12.0, True), Verdict("check.rps >= 100", 50.0, False)]
    suite = ET.fromstring(junit_xml("smoke", verdicts, 30.0)).find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["check.p95 < 400ms", "check.rps >= 100"]
    assert cases[0].find("failure") is None
    assert cases[1].find("failure").get("message") == "observed 50"

"""Threshold expressions parse strictly and judge observations."""

from __future__ import annotations

import pytest

from harness.errors import InputError
from harness.scenario import ThresholdRule
from harness.thresholds import judge, parse_threshold


@pytest.mark.parametrize(
    ("expr", "key", "op", "value"),
    [
        ("check.p95 < 400ms", "check.p95", "<", 400.0),
        ("check.p99 <= 1s", "check.p99", "<=", 1000.0),
        ("check.p50 < 20", "check.p50", "<", 20.0),
        ("check.rps >= 2.5K", "check.rps", ">=", 2500.0),
        ("errors.ratio < 1%", "errors.ratio", "<", 0.01),
        ("download.goodput >= 200MB/s", "download.goodput", ">=", 200e6),
        ("fleet.installed_xpsp2 >= 100M", "fleet.installed_xpsp2", ">=", 100e6),
        ("schedule.late == 0", "schedule.late", "==", 0.0),
    ],
)
def test_expressions_parse_into_key_operator_and_value_in_base_units(expr: str, key: str, op: str,
                                                                     value: float) -> None:
    threshold = parse_threshold(ThresholdRule(expr), "here")
    assert (threshold.key, threshold.op, threshold.value) == (key, op, pytest.approx(value))


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("check.p95", "is not METRIC.STAT OP VALUE"),
        ("check.p95 << 3ms", "is not a value for check.p95"),
        ("check.p95 < fast", "is not a value for check.p95"),
        ("chekc.p95 < 3ms", "unknown metric 'chekc.p95'"),
        ("check.p95x < 3ms", "unknown metric"),
        ("check.goodput > 1MB/s", "goodput is measured on download only"),
        ("errors.ratio < lots", "is not a value for errors.ratio"),
    ],
)
def test_a_malformed_expression_names_the_wrong_part(expr: str, message: str) -> None:
    with pytest.raises(InputError) as error:
        parse_threshold(ThresholdRule(expr), "smoke.toml: thresholds")
    assert message in str(error.value)
    assert "smoke.toml: thresholds" in str(error.value)


def test_judging_passes_fails_and_fails_what_was_not_measured() -> None:
    exprs = ("check.p95 < 400ms", "check.rps >= 100", "errors.ratio < 1%")
    rules = [parse_threshold(ThresholdRule(e), "x") for e in exprs]
    verdicts = judge(tuple(rules), {"check.p95": 12.0, "check.rps": 50.0})
    assert [(v.passed, v.observed) for v in verdicts] == [(True, 12.0), (False, 50.0), (False, None)]

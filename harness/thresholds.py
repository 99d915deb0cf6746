"""Threshold expressions: `METRIC.STAT OP VALUE`, parsed strictly and judged against observations.

Examples: `check.p95 < 400ms`, `check.rps >= 150`, `errors.ratio < 1%`, `download.goodput >= 1MB/s`,
`fleet.xpsp2_installed >= 1K`, `schedule.late == 0`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness.errors import InputError
from harness.scenario import ThresholdRule
from harness.units import parse_count, parse_duration, parse_size

REQUEST_NAMES = ("check", "download", "report")
LATENCY_STATS = ("avg", "min", "max")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}
_EXPRESSION = re.compile(r"\s*(?P<metric>[A-Za-z_][\w.]*)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>\S.*?)\s*")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)")


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold: `key` is the observation it judges (e.g. "check.p95")."""

    expr: str
    key: str
    op: str
    value: float
    abort_on_fail: bool = False
    delay_s: float = 0.0

    def passes(self, observed: float) -> bool:
        return OPERATORS[self.op](observed, self.value)


@dataclass(frozen=True)
class Verdict:
    """A threshold judged: what was observed and whether it passed."""

    expr: str
    observed: float | None
    passed: bool


def _value_parser(key: str) -> tuple[Callable[[str], float], str]:
    """How to read the value for an observation key, and an example for error messages."""
    stat = key.rsplit(".", 1)[-1]
    if _PERCENTILE.fullmatch(stat) or stat in LATENCY_STATS:
        return (lambda text: parse_duration(text if not text[-1].isdigit() else text + "ms") * 1000.0), "400ms"
    if stat == "ratio":
        return _ratio, "1%"
    if stat == "goodput":
        return (lambda text: parse_size(text.removesuffix("/s"))), "1MB/s"
    return (lambda text: parse_count(text)), "2500 or 1.5M"


def _ratio(text: str) -> float:
    if text.endswith("%"):
        return float(text[:-1]) / 100.0
    return float(text)


def _check_metric(key: str, where: str, expr: str) -> None:
    family, _, stat = key.partition(".")
    fix = ("use REQUEST.STAT (check, download, report; p50..p99.9, avg, min, max, rps, count, ratio, goodput), "
           "errors.ratio, errors.count, fleet.COUNTER or schedule.late")
    problem = f"{expr!r}: unknown metric {key!r}"
    if family in REQUEST_NAMES:
        if not (_PERCENTILE.fullmatch(stat) or stat in (*LATENCY_STATS, "rps", "count", "ratio", "goodput")):
            raise InputError(where, problem, fix)
        if stat == "goodput" and family != "download":
            raise InputError(where, f"{expr!r}: goodput is measured on download only", "write download.goodput")
        return
    if (family == "errors" and stat in ("ratio", "count")) or (family == "schedule" and stat == "late"):
        return
    if family == "fleet" and re.fullmatch(r"[a-z0-9_]+", stat):
        return
    raise InputError(where, problem, fix)


def parse_threshold(rule: ThresholdRule, where: str) -> Threshold:
    """Parse one rule; InputError naming `where`, the expression and the part that is wrong."""
    match = _EXPRESSION.fullmatch(rule.expr)
    if not match:
        raise InputError(where, f"{rule.expr!r} is not METRIC.STAT OP VALUE",
                         'write e.g. "check.p95 < 400ms" (operators: < <= > >= == !=)')
    key, op, text = match.group("metric"), match.group("op"), match.group("value")
    _check_metric(key, where, rule.expr)
    read, example = _value_parser(key)
    try:
        value = read(text)
    except (ValueError, IndexError):
        raise InputError(where, f"{rule.expr!r}: {text!r} is not a value for {key}",
                         f"write a value such as {example}") from None
    return Threshold(rule.expr, key, op, value, rule.abort_on_fail, rule.delay_s)


def parse_thresholds(rules: tuple[ThresholdRule, ...], where: str) -> tuple[Threshold, ...]:
    """Parse every rule of a scenario (plus --threshold flags)."""
    return tuple(parse_threshold(rule, where) for rule in rules)


def judge(thresholds: tuple[Threshold, ...], observed: Mapping[str, float]) -> list[Verdict]:
    """Each threshold against the observations; one with nothing observed fails."""
    verdicts = []
    for threshold in thresholds:
        value = observed.get(threshold.key)
        verdicts.append(Verdict(threshold.expr, value, value is not None and threshold.passes(value)))
    return verdicts

"""Threshold expressions: parsed strictly at start-up, so a malformed one stops the run before any load.

Grammar: `[real.]METRIC.STAT OP VALUE [over WINDOW | at DATE | between DATE and DATE]`, for
example `check.p95 < 400ms`, `check.rps >= 2500`, `errors.ratio < 1%`, `download.goodput >= 200MB/s`,
`check.p99 < 1s over 30s`, `real.fleet.installed.xpsp2 >= 100M at 2004-10-18`,
`fleet.coverage.kb884020 >= 75%`, `server.http_503.ratio < 5%`,
`check.http_503.ratio < 20% between 2004-09-21 and 2004-09-22`. docs/thresholds.md describes every
metric and unit.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from harness.config.errors import InputError
from harness.config.schema import ThresholdRule
from harness.config.units import parse_count, parse_duration, parse_size, to_datetime
from harness.config.world import World

REQUEST_NAMES = ("check", "download", "report")
LATENCY_STATS = ("avg", "min", "max")
REQUEST_STATS = ("rps", "count", "ratio", "goodput")
CHECK_REFUSALS = ("http_503.count", "http_503.ratio")  # check requests the server pushed back, as clients saw them
# fleet.NAME -> the counter it reads
FLEET_METRICS = {
    "checkins": "checkins",
    "downloads_failed": "downloads_failed",
    "downloads_corrupt": "downloads_corrupt",
    "backoffs": "backoffs",
}
# fleet.STAT.UPDATE: offers; installs through the client, by hand at the update site, either of the
# two (what the update service delivered), by administrators (network install); machines that have
# it, however they got it; and that as a share of the machines that have its prerequisites (of all
# machines when it has none).
UPDATE_STATS = ("offered", "installed", "site_installed", "delivered", "network_installed", "with", "coverage")
INSTALL_STATS = ("installed", "site_installed", "delivered", "network_installed", "with")  # counts of machines
AMONG = ".among."  # fleet.coverage.U.among.P: the share of the machines with P that have U
# The names the 2004 scenarios were written with, and what each reads.
ALIASES_2004 = {
    "sp2_offered": "offered.xpsp2",
    "sp2_installed": "installed.xpsp2",
    "sp2_network_installed": "network_installed.xpsp2",
    "sp2_machines": "with.xpsp2",
    "kb884020_offered": "offered.kb884020",
    "kb884020_installed": "installed.kb884020",
    "kb884020_coverage": "coverage.kb884020.among.xpsp2",
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}
_EXPRESSION = re.compile(
    r"\s*(?P<metric>[A-Za-z_][\w.]*)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>\S+)"
    r"(?:\s+over\s+(?P<over>\S+))?(?:\s+at\s+(?P<at>\S+))?"
    r"(?:\s+between\s+(?P<since>\S+)\s+and\s+(?P<until>\S+))?\s*"
)
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)")
_SERVER = re.compile(r"server\.(?P<series>http_\d{3}|requests|bytes_sent)\.(?P<stat>count|ratio)")
_METRIC_FIX = ("use REQUEST.STAT (check, download, report; p50..p99.9, avg, min, max, rps, count, ratio, "
               "download.goodput), check.http_503.ratio, errors.ratio, errors.count, fleet.NAME, "
               "server.http_NNN.ratio, schedule.late or checkins.unfinished")
# Keys that read one counter of the run.
COUNTED_KEYS = {"schedule.late": "late", "checkins.unfinished": "unfinished"}


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold. `key` names the observation (e.g. "check.p95"); `real` asks for real-world figures."""

    expr: str
    key: str
    op: str
    value: float
    real: bool = False
    window_s: float | None = None  # `over`: must hold in every window of this many wall seconds
    at: datetime | None = None  # `at`: judged on the value at this scenario time
    between: tuple[datetime, datetime] | None = None  # judged on what was measured between these scenario times
    abort_on_fail: bool = False
    delay_s: float = 0.0

    def passes(self, observed: float) -> bool:
        return OPERATORS[self.op](observed, self.value)


@dataclass(frozen=True)
class Verdict:
    """A threshold judged: what was observed, whether it passed, and how it was judged."""

    expr: str
    observed: float | None
    passed: bool
    detail: str = ""


def is_latency(stat: str) -> bool:
    return bool(_PERCENTILE.fullmatch(stat)) or stat in LATENCY_STATS


def _value_reader(key: str) -> tuple[Callable[[str], float], str]:
    """How to read the value written for an observation key, and an example for error messages."""
    stat = key.partition(".")[2]
    if is_latency(stat):
        return (lambda text: parse_duration(text + "ms" if text[-1].isdigit() else text) * 1000.0), "400ms"
    if key.startswith("fleet.coverage.") or stat.rsplit(".", 1)[-1] == "ratio":
        return (lambda text: float(text[:-1]) / 100.0 if text.endswith("%") else float(text)), "1% or 0.01"
    if stat == "goodput":
        return (lambda text: parse_size(text.removesuffix("/s"))), "200MB/s"
    return (lambda text: parse_count(text)), "2500 or 1.5M"


def _check_metric(key: str, real: bool, fail: Callable[[str, str], InputError], updates: tuple[str, ...]) -> None:
    family, _, stat = key.partition(".")
    if family in REQUEST_NAMES:
        if family == "check" and stat in CHECK_REFUSALS:
            if real and stat.endswith("ratio"):
                raise fail(f"{key} has no real-world equivalent", f"write {key} without real.")
            return
        if not (is_latency(stat) or stat in REQUEST_STATS):
            raise fail(f"unknown metric {key!r}", _METRIC_FIX)
        if stat == "goodput" and family != "download":
            raise fail("goodput is measured on download only", "write download.goodput")
        if real and (is_latency(stat) or stat == "ratio"):
            raise fail(f"{key} has no real-world equivalent", f"write {key} without real.")
        return
    if family == "fleet":
        what, _, update = stat.partition(".")
        if stat in FLEET_METRICS:
            return
        if what not in UPDATE_STATS or not update:
            raise fail(f"unknown fleet metric {key!r}", f"use fleet.NAME with NAME one of {', '.join(FLEET_METRICS)}, "
                       f"or fleet.STAT.UPDATE with STAT one of {', '.join(UPDATE_STATS)}")
        if updates and update.partition(AMONG)[0] not in updates:
            raise fail(f"{update!r} is not an update of the world", f"name one of {', '.join(updates)}")
        if real and what == "coverage":
            raise fail(f"{key} has no real-world equivalent", f"write {key} without real.")
        return
    if (family == "errors" and stat in ("ratio", "count")) or key in COUNTED_KEYS or _SERVER.fullmatch(key):
        if real and stat == "ratio":
            raise fail(f"{key} has no real-world equivalent", f"write {key} without real.")
        return
    raise fail(f"unknown metric {key!r}", _METRIC_FIX)


def parse_threshold(rule: ThresholdRule, where: str, world: World | None = None) -> Threshold:
    """Parse one rule; InputError naming `where`, the expression and the part that is wrong.

    With the world, a fleet metric must name one of its updates, and a coverage is taken among the
    machines with the update's last prerequisite.
    """
    expr = rule.expr

    def fail(problem: str, fix: str) -> InputError:
        return InputError(where, f"{expr!r}: {problem}", fix)

    match = _EXPRESSION.fullmatch(expr)
    if not match:
        raise InputError(where, f"{expr!r} is not METRIC.STAT OP VALUE [over WINDOW | at DATE | between DATE and DATE]",
                         'write e.g. "check.p95 < 400ms" (operators: < <= > >= == !=)')
    metric = match.group("metric")
    real = metric.startswith("real.")
    key = _canonical(metric.removeprefix("real."), world)
    family = key.partition(".")[0]
    _check_metric(key, real, fail, world.update_names if world is not None else ())
    read, example = _value_reader(key)
    text = match.group("value")
    try:
        value = read(text)
    except (ValueError, IndexError):
        raise fail(f"{text!r} is not a value for {key}", f"write a value such as {example}") from None
    window = at = between = None
    if match.group("over"):
        try:
            window = parse_duration(match.group("over"))
        except ValueError:
            raise fail(f"window {match.group('over')!r} is not a duration", "write e.g. over 30s") from None
        if window < 1:
            raise fail("the window is shorter than 1 s", "write a window of at least 1s")
    if match.group("at"):
        at = _date(match.group("at"), "at", fail)
    if match.group("since"):
        between = _date(match.group("since"), "between", fail), _date(match.group("until"), "and", fail)
        if between[1] <= between[0]:
            raise fail(f"{match.group('until')} is not after {match.group('since')}",
                       "write the earlier date first: between 2004-09-21 and 2004-09-22")
        if family == "server" or key.startswith("fleet.coverage."):
            raise fail(f"{key} is not taken at scenario dates, so not between them",
                       "write check.http_503.ratio (the clients' count of 503s)" if family == "server"
                       else f"write {metric} ... at DATE")
    if sum(x is not None for x in (window, at, between)) > 1:
        raise fail("a threshold takes one of `over`, `at` and `between`", "split it into two thresholds")
    return Threshold(expr, key, match.group("op"), value, real, window, at, between, rule.abort_on_fail, rule.delay_s)


def _date(text: str, word: str, fail: Callable[[str, str], InputError]) -> datetime:
    try:
        return to_datetime(text)
    except (TypeError, ValueError):
        raise fail(f"{text!r} is not a date", f"write e.g. {word} 2004-10-18T06:00") from None


def parse_thresholds(rules: tuple[ThresholdRule, ...], where: str, world: World | None = None) -> tuple[Threshold, ...]:
    """Parse every rule of a scenario (plus --threshold flags)."""
    return tuple(parse_threshold(rule, where, world) for rule in rules)


def _canonical(key: str, world: World | None) -> str:
    """The key a metric name reads: a 2004 alias as its generic name, a coverage with what it is taken among."""
    family, _, stat = key.partition(".")
    if family != "fleet":
        return key
    stat = ALIASES_2004.get(stat, stat)
    what, _, update = stat.partition(".")
    if what == "coverage" and AMONG not in update and world is not None and update in world.update_names:
        requires = world.prerequisites(update)
        stat += f"{AMONG}{requires[-1]}" if requires else ""
    return f"fleet.{stat}"

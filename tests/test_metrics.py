"""Recording, draining and reading latencies: a drain hands over everything recorded, and recording goes on."""

from __future__ import annotations

import random

import pytest

from harness.measure.metrics import Metrics, histogram_ms


def _ms(value: float) -> object:
    """A latency as the histograms hold it: to 3 significant digits."""
    return pytest.approx(value, rel=1e-3)


def _recorded() -> Metrics:
    metrics = Metrics()
    for latency_ms in (1.0, 2.0, 40.0):
        metrics.record_checkin(latency_ms / 1000, ok=latency_ms < 40)
        metrics.record_request("check", latency_ms, failed=latency_ms >= 40)
    metrics.count("late")
    return metrics


def test_a_drain_hands_over_what_was_recorded() -> None:
    taken = _recorded().drain()
    assert taken.due_latency.get_total_count() == 3
    assert taken.max_latency_ms() == taken.service["check"].get_max_value() / 1000 == _ms(40.0)
    assert taken.requests("check") == (3, 1)
    assert taken.counters["checkins"] == 3 and taken.counters["checkins_failed"] == 1
    assert taken.counters["late"] == 1


def test_a_drained_recorder_is_empty() -> None:
    recorder = _recorded()
    recorder.drain()
    assert recorder.due_latency.get_total_count() == 0
    assert recorder.latency_ms(50) == recorder.max_latency_ms() == 0.0
    assert recorder.requests() == (0, 0)
    assert not recorder.counters


def test_a_drained_recorder_keeps_recording_apart_from_what_it_handed_over() -> None:
    recorder = _recorded()
    taken = recorder.drain()
    recorder.record_checkin(0.005, ok=True)
    recorder.record_request("check", 5.0, failed=False)
    assert recorder.due_latency.get_total_count() == 1 and recorder.latency_ms(50) == _ms(5.0)
    assert recorder.requests("check") == (1, 0)
    assert taken.due_latency.get_total_count() == 3 and taken.requests("check") == (3, 1)
    assert recorder.drain().counters["checkins"] == 1


def test_what_drains_hand_over_adds_up_to_everything_recorded() -> None:
    recorder, totals = Metrics(), Metrics()
    for second in range(3):
        recorder.record_checkin(0.001 * (second + 1), ok=True)
        totals.add(recorder.drain())
    assert totals.due_latency.get_total_count() == 3
    assert totals.counters["checkins"] == 3
    assert totals.max_latency_ms() == _ms(3.0)


def test_percentiles_are_the_histograms_own() -> None:
    rng = random.Random(5)
    metrics = Metrics()
    for _ in range(5000):
        metrics.record_checkin(rng.lognormvariate(-6, 1.5), ok=True)
    for percentile in (0, 50, 99, 99.9, 100):
        expected = metrics.due_latency.get_value_at_percentile(percentile) / 1000
        assert histogram_ms(metrics.due_latency, f"p{percentile:g}") == expected

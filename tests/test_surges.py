"""Scenario events: which machines a site rush, a boot storm or a "detect now" makes check, and when."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
from msgspec.structs import replace

from harness.config.scenario import load_scenario
from harness.config.schema import Event
from harness.model.events import event_checks
from harness.model.fleet import Fleet
from harness.server.policy import LAUNCH
from tests.conftest import SMOKE, run_locust

SPEC = replace(load_scenario(SMOKE).fleet, machines=40_000,
               install_policies=(("automatic", 0.5), ("off", 0.5)), online_profiles=(("always_on", 1.0),))
FLEET = Fleet(SPEC, LAUNCH)
AT = LAUNCH + timedelta(days=1, hours=12)  # every always-on machine is on: its day starts at 09:00 local
AT_S = (AT - LAUNCH).total_seconds()


def _checks(kind: str, share: float = 0.5, within: str = "40h", fleet: Fleet = FLEET) -> tuple[np.ndarray, np.ndarray]:
    event = Event(kind, AT, share, float(within.removesuffix("h")) * 3600.0)  # type: ignore[arg-type]
    return event_checks(event, 0, fleet, LAUNCH)


def test_a_site_rush_brings_users_of_any_install_policy_and_fades_as_the_news_ages() -> None:
    chosen, due = _checks("site_rush")
    assert abs(len(chosen) / SPEC.machines - 0.5) < 0.02  # every always-on machine is on, whatever its policy
    assert abs((~FLEET.checks_for_updates(chosen)).mean() - 0.5) < 0.02  # Automatic Updates off: the site needs none
    since = due - AT_S
    assert since.min() >= 0 and since.max() <= 40 * 3600
    quarters = np.histogram(since, bins=4, range=(0, 40 * 3600))[0] / len(since)
    # an exponential of mean a quarter of the window, cut at it: 64 %, 23 %, 8 %, 3 %
    assert np.allclose(quarters, [0.644, 0.237, 0.087, 0.032], atol=0.02)


def test_a_site_rush_brings_only_the_machines_that_are_on_at_their_visit() -> None:
    offices = Fleet(replace(SPEC, online_profiles=(("office", 1.0),)), LAUNCH)
    chosen, due = _checks("site_rush", share=1.0, fleet=offices)
    assert offices.online(offices.global_indices_of(chosen), due).all()
    assert 0 < len(chosen) < 0.6 * SPEC.machines  # a weekday's working hours, out of 40 hours


def test_a_detect_now_reaches_only_machines_whose_client_checks_for_updates() -> None:
    chosen, due = _checks("detect_now", share=1.0, within="1h")
    assert len(chosen) and FLEET.checks_for_updates(FLEET.global_indices_of(chosen)).all()
    assert abs(len(chosen) / SPEC.machines - 0.5) < 0.02
    assert ((due >= AT_S) & (due <= AT_S + 3600)).all()


def test_a_boot_storm_boots_machines_at_the_same_local_time_in_every_time_zone() -> None:
    chosen, due = _checks("boot_storm", share=1.0, within="1h")
    local = due + FLEET.utc_offsets_s(FLEET.global_indices_of(chosen), due)
    at_local = AT_S  # `at` read as a local time of day
    assert ((local >= at_local) & (local <= at_local + 3600)).all()
    assert len(np.unique(FLEET.utc_offsets_s(FLEET.global_indices_of(chosen), due))) > 3  # over many zones


def test_site_visitors_install_what_they_are_offered_at_once_and_their_clients_schedule_stays_as_it_was(
        tmp_path: Path) -> None:
    scenario = tmp_path / "site.toml"  # Automatic Updates off everywhere: every check-in is a visit to the site
    scenario.write_text(SMOKE.read_text() + '\n[fleet.install]\noff = 1\n\n[[events]]\nkind = "site_rush"\n'
                        'at = 2004-08-18T06:20:00Z\nshare = 0.25\nwithin = "30m"\n')
    run = run_locust("--scenario", str(scenario), "-t", "5s", results_dir=tmp_path)
    assert run.summary is not None, run.stderr[-2000:]
    counters, checkins = run.summary["fleet"]["counters"], run.summary["checkins"]
    assert counters["site_visits"] > 1000 and checkins["failed"] == 0
    assert checkins["count"] + checkins["unfinished"]["count"] == counters["site_visits"]
    assert 0 < counters["offered_xpsp2"] == counters["installed_xpsp2_site"]  # at once: none pending, none at 03:00
    assert counters.get("installed_xpsp2", 0) == 0  # none through the client, which is off
    assert counters.get("install_pending_xpsp2", 0) == 0


def test_site_visits_come_evenly_over_their_window_from_users_of_any_install_policy() -> None:
    chosen, due = _checks("site_visits")
    assert abs(len(chosen) / SPEC.machines - 0.5) < 0.02
    assert abs((~FLEET.checks_for_updates(chosen)).mean() - 0.5) < 0.02
    quarters = np.histogram(due - AT_S, bins=4, range=(0, 40 * 3600))[0] / len(due)
    assert np.allclose(quarters, 0.25, atol=0.02)

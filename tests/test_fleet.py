"""The fleet model: static attributes by hash, check cycles, online hours in real time zones, installs, identities,
and the status word."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from harness.config.scenario import load_scenario
from harness.config.world import default_world
from harness.model.fleet import DOWNLOADING, INSTALL_PENDING, Fleet, Partition
from harness.server.policy import LAUNCH
from tests.conftest import SMOKE

WORLD = default_world()
BOOT_DELAY_S, RESCHEDULE_WAIT_S = WORLD.client.boot_delay_s, WORLD.client.reschedule_wait_s
SPEC = replace(load_scenario(SMOKE).fleet, machines=100_000,
               install_policies=(("automatic", 0.6), ("download_notify", 0.15), ("notify", 0.15), ("off", 0.1)),
               online_profiles=(("home", 0.5), ("office", 0.3), ("always_on", 0.2)),
               connections=(("dialup", 0.4), ("broadband", 0.6)))
FLEET = Fleet(SPEC, LAUNCH)
HOUR = 3600.0
indices_st = st.lists(st.integers(0, SPEC.machines - 1), min_size=1, max_size=50).map(
    lambda values: np.array(values, dtype=np.uint32))
times_st = st.floats(0, 60 * 86400)  # anywhere in a two-month timeline


def test_detection_intervals_lie_within_17_6_to_22_hours() -> None:
    indices = np.repeat(np.arange(2000, dtype=np.uint32), 3)
    intervals = FLEET.check_intervals(indices, np.tile(np.array([0.0, 1.0, 99.0]), 2000))
    assert intervals.min() >= 17.6 * HOUR and intervals.max() <= 22 * HOUR
    assert intervals.mean() == pytest.approx(WORLD.client.mean_interval_s, rel=0.02)


@settings(max_examples=60, deadline=None)
@given(indices_st, times_st)
def test_a_machine_that_is_on_when_its_cycle_ends_checks_17_6_to_22_hours_after_its_last_check(
        indices: np.ndarray, due: float) -> None:
    last = np.full(len(indices), due)
    following = FLEET.next_checks(indices, last)
    natural = last + FLEET.check_intervals(indices, last)
    on = FLEET.online(indices, natural)
    assert np.all(following[on] == natural[on])
    assert np.all((following[on] - last[on] >= 17.6 * HOUR) & (following[on] - last[on] <= 22 * HOUR))


@settings(max_examples=60, deadline=None)
@given(indices_st, times_st)
def test_machines_check_only_while_they_are_on(indices: np.ndarray, earliest: float) -> None:
    when = FLEET.checkable_at(indices, np.full(len(indices), earliest))
    assert np.all(when >= earliest)
    assert np.all(FLEET.online(indices, when))


@settings(max_examples=60, deadline=None)
@given(indices_st, times_st)
def test_a_machine_overdue_while_off_checks_a_few_minutes_after_it_boots(indices: np.ndarray, earliest: float) -> None:
    asked = np.full(len(indices), earliest)
    off = ~FLEET.online(indices, asked)
    when = FLEET.checkable_at(indices[off], asked[off])
    # It booted in the last few minutes: a little earlier it was still off (or only just on).
    boot = when - BOOT_DELAY_S[1]
    assert np.all(~FLEET.online(indices[off], boot - 1) | (boot <= earliest))
    assert np.all(when - earliest >= BOOT_DELAY_S[0])


def test_automatic_installs_happen_at_3am_local_when_on_else_soon_after_the_next_boot() -> None:
    indices = np.arange(20_000, dtype=np.uint32)
    automatic = indices[FLEET.policy_codes(indices) == 0]
    ready = np.full(len(automatic), 5 * 86400.0 + 12 * HOUR)
    installs = FLEET.install_times(automatic, ready)
    local_hour = ((LAUNCH.timestamp() + installs + FLEET.utc_offsets_s(automatic, installs)) % 86400) / HOUR
    at_three = np.isclose(local_hour, 3.0)
    assert at_three.any() and (~at_three).any()
    assert np.all(FLEET.online(automatic[at_three], installs[at_three]))
    assert np.all(installs - ready <= 4 * 86400)
    late = automatic[~at_three]
    assert np.all(FLEET.online(late, installs[~at_three]))
    assert np.all(~FLEET.online(late, installs[~at_three] - RESCHEDULE_WAIT_S[1] - BOOT_DELAY_S[1] - 3600))


def test_a_background_download_progresses_only_while_the_machine_is_on() -> None:
    indices = np.arange(2_000, dtype=np.uint32)
    start = np.full(len(indices), 2 * 86400.0 + 20 * HOUR)  # Friday Aug 20, 20:00 UTC
    needed = 7 * HOUR  # SP2 over dial-up: 6-7 hours of transfer
    done = FLEET.downloaded_at(indices, start, needed * FLEET.bandwidths(indices))
    for machine, (begin, end) in enumerate(zip(start[:300], done[:300], strict=True)):
        minutes = np.arange(begin, end, 60.0)  # every minute of the download: on for exactly the time needed
        on = FLEET.online(np.full(len(minutes), indices[machine]), minutes).sum() * 60.0
        assert abs(on - needed) <= 120.0
    always_on = FLEET.profiles(indices) == 2
    assert np.allclose(done[always_on] - start[always_on], needed)  # a machine never off takes just the time
    elapsed = done[~always_on] - start[~always_on]
    assert (elapsed >= needed).all() and elapsed.mean() > 24 * HOUR  # the others: evenings, weekends, office hours


def test_machines_with_automatic_updates_off_never_check() -> None:
    indices = np.arange(SPEC.machines, dtype=np.uint32)
    first = FLEET.first_checks(indices)
    off = FLEET.policy_codes(indices) == 3
    assert np.all(np.isinf(first[off])) and np.all(np.isfinite(first[~off]))


def test_attribute_shares_follow_the_scenario() -> None:
    indices = np.arange(SPEC.machines, dtype=np.uint32)
    assert np.bincount(FLEET.policy_codes(indices)) / SPEC.machines == pytest.approx([0.6, 0.15, 0.15, 0.1], abs=0.01)
    assert np.bincount(FLEET.profiles(indices)) / SPEC.machines == pytest.approx([0.5, 0.3, 0.2], abs=0.01)
    assert (FLEET.attribute_codes("edition", indices) == 0).mean() == pytest.approx(0.6, abs=0.01)
    english = FLEET.language_positions(indices) == 0
    assert english.mean() == pytest.approx(SPEC.languages[0][1], abs=0.01)


def test_home_machines_are_on_in_the_evening_and_office_machines_in_working_hours() -> None:
    indices = np.arange(20_000, dtype=np.uint32)
    profiles = FLEET.profiles(indices)
    # Tuesday 2004-08-24, at 20:30 and 13:00 in each machine's time zone (shifts are under an hour)
    for hour, profile in ((20.5, 0), (13.0, 1)):
        t = datetime(2004, 8, 24, tzinfo=UTC).timestamp() - LAUNCH.timestamp() + hour * HOUR
        on = FLEET.online(indices, t - FLEET.utc_offsets_s(indices, t))
        assert on[profiles == profile].all() and not on[profiles == 1 - profile].any()
        assert on[profiles == 2].all()


def test_the_same_seed_gives_the_same_fleet_and_identities_and_another_seed_another() -> None:
    indices = np.arange(5000, dtype=np.uint32)
    again = Fleet(SPEC, LAUNCH)
    assert np.array_equal(FLEET.first_checks(indices), again.first_checks(indices))
    assert FLEET.machine(123) == again.machine(123)
    other = Fleet(replace(SPEC, seed=SPEC.seed + 1), LAUNCH)
    assert not np.array_equal(FLEET.first_checks(indices), other.first_checks(indices))
    assert FLEET.machine(123).client_id != other.machine(123).client_id


def test_identities_are_stable_distinct_and_match_the_machines_language() -> None:
    machines = [FLEET.machine(i) for i in range(2000)]
    assert len({m.client_id for m in machines}) == 2000 and len({m.mac for m in machines}) == 2000
    for machine in machines:
        assert machine.locale == WORLD.language(machine.language).faker.replace("_", "-")
        assert len(machine.hostname) <= 15 and machine.hostname.replace("-", "").isalnum()
        assert machine.hostname.isascii()
        guid = uuid.UUID(machine.client_id)
        assert guid.version == 4 and guid.variant == uuid.RFC_4122 and str(guid) == machine.client_id


def test_the_union_of_two_partitions_is_exactly_the_single_fleet() -> None:
    parts = [Fleet(SPEC, LAUNCH, Partition(k, 2)) for k in range(2)]
    assert sum(len(part) for part in parts) == len(FLEET)
    whole = FLEET.first_checks(np.arange(SPEC.machines, dtype=np.uint32))
    for k, part in enumerate(parts):
        assert np.array_equal(part.first_checks(part.global_indices()), whole[k::2])
        for local in (0, 1, len(part) - 1):
            assert part.machine(local) == FLEET.machine(k + 2 * local)


def test_summer_time_moves_local_hours_as_the_zone_did_in_2004() -> None:
    """New York left daylight saving on Oct 31 2004 at 06:00 UTC: machines there went from UTC-4 to -5."""
    indices = np.arange(20_000, dtype=np.uint32)
    zones = FLEET.zones(indices)
    new_york = indices[zones == FLEET.zone_names.index("America/New_York")]
    assert len(new_york) > 1000  # English machines, the most of them in the US East
    before = (datetime(2004, 10, 31, 5, 59, tzinfo=UTC) - LAUNCH).total_seconds()
    assert set(FLEET.utc_offsets_s(new_york, before) / HOUR) == {-4.0}
    assert set(FLEET.utc_offsets_s(new_york, before + 120) / HOUR) == {-5.0}
    english = FLEET.language_positions(indices) == 0
    assert len(set(FLEET.zone_names[zone] for zone in zones[english])) > 5  # spread over the English-speaking world


def test_the_status_word_holds_installed_updates_the_phase_the_update_under_way_and_failures_in_two_bytes() -> None:
    fleet = Fleet(replace(SPEC, machines=10), LAUNCH)
    assert fleet.status.itemsize == 2
    fleet.mark_installed(3, "kb884020")
    fleet.set_phase(3, DOWNLOADING, "xpsp2")
    fleet.set_failures(3, 9)
    assert fleet.installed_updates(3) == {"kb884020"} and fleet.phase(3) == (DOWNLOADING, "xpsp2")
    assert fleet.failures(3) == 7  # capped: back-off has reached its cap by then
    fleet.set_phase(3, INSTALL_PENDING, "kb884020")
    assert fleet.phase(3) == (INSTALL_PENDING, "kb884020") and fleet.installed_updates(3) == {"kb884020"}
    assert fleet.failures(3) == 7 and fleet.installed_updates(2) == frozenset()


def test_enterprise_managed_machines_are_xp_pro_and_make_up_the_scenarios_share() -> None:
    indices = np.arange(SPEC.machines, dtype=np.uint32)
    managed = FLEET.enterprise_mask(indices)
    pro = FLEET.attribute_codes("edition", indices) == FLEET.attribute_values("edition").index("pro")
    assert managed.any() and not (managed & ~pro).any()  # XP Home could not join a domain
    assert managed.mean() == pytest.approx(SPEC.enterprise_share, abs=0.005)
    assert [FLEET.machine(i).enterprise for i in range(500)] == managed[:500].tolist()

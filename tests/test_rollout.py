"""The throttled rollout is sticky, respects attribute dates, language dates, prerequisites and the managed block."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from harness.config.schema import Eligibility, Rollouts, RolloutSpec, ServerSpec, Step
from harness.config.world import default_world
from harness.model.identity import IdentityPool
from harness.model.rollout_gate import gate, gates_of_guid_words
from harness.server.policy import LAUNCH
from harness.server.rollout import Ramp, RolloutPolicy

PRO_START = LAUNCH + timedelta(days=7)
STEPS = ((LAUNCH, 1.0), (LAUNCH + timedelta(days=30), 50.0))
POLICY = RolloutPolicy(ServerSpec(rollout=Rollouts((
    ("xpsp2", RolloutSpec(eligible=Eligibility((("edition", (("home", LAUNCH), ("pro", PRO_START))),)),
                          managed_block_until=LAUNCH + timedelta(days=120), steps=tuple(Step(*s) for s in STEPS))),
    ("kb884020", RolloutSpec(steps=(Step(LAUNCH, 100.0),))),
))), default_world())


def offers(client: str, when, edition="home", language="en", enterprise=False, installed=()) -> list[str]:
    return list(POLICY.offered(client_id=client, attributes={"edition": edition}, language=language,
                               enterprise=enterprise, installed=installed, when=when.timestamp()))


def test_percentage_is_zero_before_the_first_step_linear_between_and_flat_after() -> None:
    ramp = Ramp([(t.timestamp(), percent) for t, percent in STEPS])
    assert ramp.at((LAUNCH - timedelta(seconds=1)).timestamp()) == 0.0
    assert ramp.at(LAUNCH.timestamp()) == 1.0
    assert ramp.at((LAUNCH + timedelta(days=15)).timestamp()) == 25.5
    assert ramp.at((LAUNCH + timedelta(days=30)).timestamp()) == 50.0
    assert ramp.at((LAUNCH + timedelta(days=300)).timestamp()) == 50.0


def test_a_ramp_with_one_step_jumps_to_it_and_a_ramp_of_three_bends_at_the_middle_one() -> None:
    assert Ramp([(100.0, 30.0)]).at(99.9) == 0.0
    assert Ramp([(100.0, 30.0)]).at(100.0) == 30.0
    bent = Ramp([(0.0, 0.0), (10.0, 10.0), (20.0, 50.0)])
    assert (bent.at(5.0), bent.at(10.0), bent.at(15.0)) == (5.0, 10.0, 30.0)


def test_any_client_id_json_can_carry_has_a_gate() -> None:
    assert 0 <= gate("\ud800-lone-surrogate", "xpsp2") < 100
    assert gate("HOST-1", "xpsp2") == gate("HOST-1", "xpsp2") != gate("HOST-1", "kb884020")


def test_gates_are_spread_evenly_and_a_machine_s_gates_for_two_updates_are_unrelated() -> None:
    clients = [f"HOST-{i:06d}" for i in range(20_000)]  # sequential names, the hardest case for a CRC
    sp2 = [gate(client, "xpsp2") for client in clients]
    hotfix = [gate(client, "kb884020") for client in clients]
    assert all(0 <= g < 100 for g in sp2 + hotfix)
    for tenth in range(10):
        assert 0.09 < sum(tenth * 10 <= g < tenth * 10 + 10 for g in sp2) / len(clients) < 0.11
    both_low = sum(a < 20 and b < 20 for a, b in zip(sp2, hotfix, strict=True)) / len(clients)
    assert 0.035 < both_low < 0.045  # 20 % of 20 %, as for independent gates


def test_a_machine_once_offered_stays_offered_as_the_throttle_rises() -> None:
    clients = [f"client-{i}" for i in range(3000)]
    offered_before: set[str] = set()
    for day in range(0, 40, 3):
        now = {c for c in clients if "xpsp2" in offers(c, LAUNCH + timedelta(days=day))}
        assert offered_before <= now
        offered_before = now
    assert 0.45 < len(offered_before) / len(clients) < 0.55


def test_pro_machines_are_never_offered_sp2_before_their_date() -> None:
    lucky = next(f"c{i}" for i in range(10_000) if gate(f"c{i}", "xpsp2") < 1.0)
    assert offers(lucky, PRO_START - timedelta(seconds=1), edition="pro") == []
    assert offers(lucky, PRO_START, edition="pro") == ["xpsp2"]


def test_blocked_enterprise_machines_and_unreleased_languages_are_not_offered_sp2() -> None:
    late = LAUNCH + timedelta(days=29)
    everyone = [f"c{i}" for i in range(500)]
    assert not any(offers(c, late, enterprise=True) for c in everyone)
    assert not any(offers(c, LAUNCH + timedelta(days=2), language="ru") for c in everyone)


def test_the_hotfix_is_offered_only_to_sp2_machines() -> None:
    everyone = [f"c{i}" for i in range(500)]
    assert not any("kb884020" in offers(c, LAUNCH + timedelta(days=29)) for c in everyone)
    assert all(offers(c, LAUNCH, installed=("xpsp2",)) == ["kb884020"] for c in everyone)


def test_a_value_left_out_of_the_eligibility_dates_is_never_eligible() -> None:
    home_only = RolloutPolicy(ServerSpec(rollout=Rollouts((
        ("xpsp2", RolloutSpec(eligible=Eligibility((("edition", (("home", LAUNCH),)),)),
                              steps=(Step(LAUNCH, 100.0),))),))), default_world())
    later = (LAUNCH + timedelta(days=365)).timestamp()
    assert home_only.offered("c1", {"edition": "home"}, "en", False, [], later) == ("xpsp2",)
    assert home_only.offered("c1", {"edition": "pro"}, "en", False, [], later) == ()


def test_a_staged_rollout_holds_each_step_until_the_next() -> None:
    stages = Ramp([(0.0, 1.0), (10.0, 10.0), (20.0, 50.0)], stages=True)
    assert (stages.at(-1.0), stages.at(0.0), stages.at(9.9), stages.at(10.0), stages.at(19.9), stages.at(25.0)) \
        == (0.0, 1.0, 1.0, 10.0, 10.0, 50.0)


def test_a_user_asking_by_hand_passes_the_throttle_only_where_the_rollout_says_so_and_never_before_eligible() -> None:
    def by_hand(gated: bool, when, edition: str = "home") -> int:
        rollout = RolloutSpec(eligible=Eligibility((("edition", (("home", LAUNCH), ("pro", PRO_START))),)),
                              steps=(Step(LAUNCH, 1.0),), gate_by_hand=gated)
        policy = RolloutPolicy(ServerSpec(rollout=Rollouts((("xpsp2", rollout),))), default_world())
        return sum("xpsp2" in policy.offered(f"client-{i}", {"edition": edition}, "en", False, (), when.timestamp(),
                                             by_hand=True) for i in range(1000))
    day = LAUNCH + timedelta(days=1)
    assert by_hand(gated=False, when=day) == 1000  # the site offers it to every eligible machine that asks
    assert by_hand(gated=True, when=day) < 30  # held to the 1 % like the client's own checks
    assert by_hand(gated=False, when=day, edition="pro") == 0  # XP Pro is not eligible until a week later
    assert by_hand(gated=False, when=LAUNCH - timedelta(seconds=1)) == 0  # nor anyone before the rollout starts


def test_the_gates_of_many_machines_at_once_are_each_machines_own_gate() -> None:
    identities = IdentityPool(seed=11)
    machines = np.random.default_rng(3).integers(0, 2**32, 2000, dtype=np.uint64)
    for update in ("xpsp2", "kb884020", "m142"):
        at_once = gates_of_guid_words(*identities.client_guid_words(machines), update)
        assert at_once.tolist() == [gate(identities.client_id(int(machine)), update) for machine in machines]

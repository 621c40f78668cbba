"""The decision of SPEC §6 as a pure function, and the Duo setting's cascade with locks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from access.entitlement import (
    Cascade,
    GroupSetting,
    InstanceDuo,
    Refusal,
    Requirement,
    Seat,
    cascade,
    decide,
)
from core.tables import utcnow

NOW = utcnow()
PRO = Requirement(frozenset({"duo_pro", "duo_enterprise"}))
ENTERPRISE = Requirement(frozenset({"duo_enterprise"}))
EXPERIMENTAL = Requirement(frozenset({"duo_enterprise"}), maturity="experimental")
SAAS_ONLY = Requirement(frozenset({"duo_enterprise"}), self_managed=False)
ON = Cascade(True, "instance", None)


def seat(add_on: str = "duo_enterprise", namespace_id: int | None = None, *, days: int | None = None,
         experiments: bool = False) -> Seat:
    expires = None if days is None else NOW + timedelta(days=days)
    return Seat(add_on, namespace_id, NOW - timedelta(days=30), expires, experiments)


def group(path: str, enabled: bool | None = None, lock: bool = False, experiments: bool = False) -> GroupSetting:
    return GroupSetting(path, enabled, lock, experiments)


@pytest.mark.parametrize(
    ("groups", "project", "expected"),
    [
        pytest.param([], None, Cascade(True, "instance", None), id="instance-default"),
        pytest.param([group("a", False)], None, Cascade(False, "a", None), id="group-off"),
        pytest.param([group("a", False), group("a/b", True)], None, Cascade(True, "a/b", None), id="subgroup-overrides"),
        pytest.param([group("a", False, lock=True), group("a/b", True)], None, Cascade(False, "a", "a"), id="parent-locks"),
        pytest.param([group("a", None, lock=True), group("a/b", False)], None, Cascade(True, "instance", "a"),
                     id="lock-of-an-inherited-value"),
        pytest.param([group("a", False)], ("a/p", True), Cascade(True, "a/p", None), id="project-overrides"),
        pytest.param([group("a", True, lock=True)], ("a/p", False), Cascade(True, "a", "a"), id="project-locked"),
    ],
)
def test_duo_features_enabled_cascades_down_and_a_lock_imposes_it(groups: list, project: tuple | None, expected: Cascade) -> None:
    assert cascade(InstanceDuo(), groups, project) == expected


def test_an_instance_lock_wins_over_everything() -> None:
    locked_off = InstanceDuo(duo_features_enabled=False, lock_duo_features_enabled=True)
    assert cascade(locked_off, [group("a", True)], ("a/p", True)) == Cascade(False, "instance", "instance")


@pytest.mark.parametrize(
    ("requirement", "seats", "place", "mode", "reason"),
    [
        pytest.param(PRO, [seat("duo_pro")], ON, "self_managed", None, id="pro-seat-pro-feature"),
        pytest.param(ENTERPRISE, [seat("duo_pro")], ON, "self_managed", Refusal.NO_SEAT, id="pro-seat-enterprise-feature"),
        pytest.param(ENTERPRISE, [], ON, "self_managed", Refusal.NO_SEAT, id="no-seat"),
        pytest.param(ENTERPRISE, [seat(days=-1)], ON, "self_managed", Refusal.NO_SEAT, id="expired-seat"),
        pytest.param(ENTERPRISE, [seat(days=1)], ON, "self_managed", None, id="seat-until-tomorrow"),
        pytest.param(ENTERPRISE, [seat(namespace_id=1)], ON, "self_managed", Refusal.NO_SEAT, id="group-seat-on-sm"),
        pytest.param(ENTERPRISE, [seat()], ON, "saas", Refusal.NO_SEAT, id="instance-seat-on-saas"),
        pytest.param(ENTERPRISE, [seat(namespace_id=1)], ON, "saas", None, id="group-seat-on-saas"),
        pytest.param(ENTERPRISE, [seat()], Cascade(False, "a", None), "self_managed", Refusal.DUO_DISABLED, id="duo-off"),
        pytest.param(SAAS_ONLY, [seat()], ON, "self_managed", Refusal.NOT_ON_SELF_MANAGED, id="saas-only-on-sm"),
        pytest.param(SAAS_ONLY, [seat(namespace_id=1)], ON, "saas", None, id="saas-only-on-saas"),
    ],
)
def test_decisions(requirement: Requirement, seats: list[Seat], place: Cascade, mode: str, reason: Refusal | None) -> None:
    decision = decide(requirement, mode, instance=InstanceDuo(), seats=seats, place=place, now=NOW)  # type: ignore[arg-type]
    assert (decision.allowed, decision.reason) == (reason is None, reason)


def test_maturity_needs_experiments_of_the_instance_on_self_managed() -> None:
    off = decide(EXPERIMENTAL, "self_managed", instance=InstanceDuo(), seats=[seat()], place=ON)
    on = decide(EXPERIMENTAL, "self_managed", instance=InstanceDuo(beta_features_enabled=True), seats=[seat()], place=ON)
    assert off.reason == Refusal.EXPERIMENTS_DISABLED and on.allowed


def test_maturity_needs_experiments_of_the_top_level_group_on_saas() -> None:
    seats = [seat(namespace_id=1, experiments=True)]
    about = {"instance": InstanceDuo(beta_features_enabled=True), "seats": seats, "place": ON}
    assert decide(EXPERIMENTAL, "saas", **about, root_experiments=False).reason == Refusal.EXPERIMENTS_DISABLED
    assert decide(EXPERIMENTAL, "saas", **about, root_experiments=True).allowed
    # Without a resource: the seat's group decides.
    assert decide(EXPERIMENTAL, "saas", instance=InstanceDuo(), seats=seats, place=None).allowed
    assert not decide(EXPERIMENTAL, "saas", instance=InstanceDuo(), seats=[seat(namespace_id=1)], place=None).allowed


def test_without_a_resource_the_instance_setting_decides() -> None:
    off = InstanceDuo(duo_features_enabled=False)
    assert decide(PRO, "self_managed", instance=off, seats=[seat()], place=None).reason == Refusal.DUO_DISABLED

"""Issue 29 items 1 and 5: every registered policy satisfies its kind's contract (the
check_estimator of twin's policies), and the check catches a policy that breaks one."""

from __future__ import annotations

import pytest

from twin.policycheck import PolicyContractError, check_policy
from twin.policies.registry import KINDS, register, registry

BUILTIN = [(kind, name) for kind in KINDS for name, cls in sorted(registry(kind).items())
           if cls.__module__.startswith("twin.")]


def test_every_kind_has_its_builtins():
    kinds = {k for k, _ in BUILTIN}
    assert kinds == set(KINDS) and len(BUILTIN) >= 17


@pytest.mark.parametrize("kind, name", BUILTIN, ids=[f"{k}-{n}" for k, n in BUILTIN])
def test_every_builtin_policy_keeps_its_contract(kind, name):
    check_policy(kind, name)


@register("dispatch", "test_out_of_range")
class _OutOfRange:
    def __init__(self, station):
        self.n = len(station.lanes)

    def choose(self, lot):
        return self.n  # one past the last lane


@register("dispatch", "test_mutates")
class _Mutates:
    def __init__(self, station):
        self.lanes = station.lanes

    def choose(self, lot):
        lot.qty += 0  # reads are fine
        lot.work += 1.0  # a rule must not change the lot it is shown
        return 0


@register("dispatch", "test_unseeded")
class _Unseeded:
    import random as _random

    def __init__(self, station):
        self.n = len(station.lanes)

    def choose(self, lot):
        return self._random.randrange(self.n)  # randomness outside the model's named streams


@register("maintenance", "test_negative_age")
class _NegativeAge:
    def __init__(self, spec, rng):
        pass

    def plan(self, view):
        return -1.0


@register("queue", "test_text_key")
class _TextKey:
    draws_time = False

    def __init__(self, station):
        self.key = lambda lot: str(lot.id)


@register("planning", "test_no_take")
class _NoTake:
    def __init__(self, model):
        pass

    def start(self):
        pass


@pytest.mark.parametrize("kind, name, rule", [
    ("dispatch", "test_out_of_range", "chose lane 3"),
    ("dispatch", "test_mutates", "changed the lot"),
    ("dispatch", "test_unseeded", "not deterministic"),
    ("maintenance", "test_negative_age", "age -1.0; an age is a number"),
    ("queue", "test_text_key", "not a number"),
    ("planning", "test_no_take", "PlanningPolicy"),
])
def test_the_check_names_the_rule_a_broken_policy_breaks(kind, name, rule):
    with pytest.raises(PolicyContractError, match=rule):
        check_policy(kind, name)

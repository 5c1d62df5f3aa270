"""Sending budgets on other keys than the account (RULES R10.3).

A :class:`Budget` is a sliding window, like an account's hour of codes, counted on a
key the service passes with each ``request_code`` (the client's IP address, the
e-mail address) or on a fixed key (one budget for the whole sender). The facade
takes an entry in each budget first, then asks the account's rules, and gives the
entries back if anything refuses: a budget never over-admits under concurrency, and
a refused request leaves no entry anywhere (docs/rules.md, R10).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta

import attrs

from ._keys import Keyring
from ._policy import duration_ms, positive_int
from ._results import Reason, Refused
from ._rules import check_account

__all__ = ["Budget", "BudgetPlan", "exhausted"]

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_MS = timedelta(milliseconds=1)


def _name(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Budget.name must be a str, not {type(value).__name__}")
    if not _NAME.fullmatch(value):
        raise ValueError(f"Budget.name must be 1-32 of A-Z a-z 0-9 _ . -, got {value!r}")


def _limit(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    positive_int("Budget.limit", value)


def _window(_: object, attribute: attrs.Attribute[timedelta], value: object) -> None:
    duration_ms("Budget.window", value)


def _key(_: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None:
        check_account(value, "Budget.key")


@attrs.frozen
class Budget:
    """At most ``limit`` codes per sliding ``window`` for each key of this budget.

    ``name`` names it in refusals (``Refused.budget``) and in ``budget_keys``; ``key``,
    if given, is the one key it always counts on (a global budget), else each
    ``request_code`` passes the key in ``budget_keys={name: key}``. Keys are stored as
    keyed hashes, like accounts (R4.2).
    """

    name: str = attrs.field(validator=_name)
    limit: int = attrs.field(validator=_limit)
    window: timedelta = attrs.field(validator=_window)
    key: str | None = attrs.field(default=None, validator=_key, kw_only=True)


class BudgetPlan:
    """The budgets of one ``SecurityCodes``, turned into store names per call."""

    __slots__ = ("_budgets", "_keys", "_window")

    def __init__(self, budgets: object, keys: Keyring) -> None:
        if budgets is None:
            budgets = ()
        if not isinstance(budgets, Iterable) or isinstance(budgets, str | bytes | Budget):
            raise TypeError(f"budgets must be a list of Budget, not {type(budgets).__name__}")
        items = tuple(budgets)
        for i, budget in enumerate(items):
            if not isinstance(budget, Budget):
                raise TypeError(f"budgets[{i}] must be a Budget, not {type(budget).__name__}")
        names = [b.name for b in items]
        if len(set(names)) != len(names):
            raise ValueError(f"budgets must have distinct names, got {names}")
        self._budgets = items
        self._keys = keys
        self._window = {b.name: duration_ms("Budget.window", b.window) for b in items}

    def __bool__(self) -> bool:
        return bool(self._budgets)

    def names(self, budget_keys: object) -> tuple[tuple[Budget, str, int], ...]:
        """``(budget, stored name, window ms)`` to count, in order; raises on bad keys.

        Every declared budget without a fixed key needs its key in ``budget_keys``; a
        name that no budget has is an error (a typo would silently count nothing).
        """
        if budget_keys is None:
            budget_keys = {}
        if not isinstance(budget_keys, Mapping):
            raise TypeError(
                f"budget_keys must be a mapping of budget name to key, "
                f"not {type(budget_keys).__name__}"
            )
        known = {b.name for b in self._budgets}
        for name in budget_keys:
            if name not in known:
                raise ValueError(
                    f"budget_keys names {name!r}, which is not a budget of this SecurityCodes "
                    f"(its budgets: {sorted(known)})"
                )
        out = []
        for budget in self._budgets:
            key = budget.key
            if key is None:
                if budget.name not in budget_keys:
                    raise ValueError(
                        f"budget {budget.name!r} needs its key: "
                        f"request_code(..., budget_keys={{{budget.name!r}: ...}})"
                    )
                key = check_account(budget_keys[budget.name], f"budget_keys[{budget.name!r}]")
            elif budget.name in budget_keys:
                raise ValueError(f"budget {budget.name!r} has a fixed key: do not pass one")
            stored = self._keys.name(b"budget:" + budget.name.encode(), key)
            out.append((budget, stored, self._window[budget.name]))
        return tuple(out)


def exhausted(budget: Budget, oldest: int, window: int, now: int) -> Refused:
    """The refusal of a request that ``budget`` has no room for (R10.3)."""
    return Refused(
        Reason.BUDGET_EXHAUSTED, retry_after=_MS * (oldest + window - now), budget=budget.name
    )

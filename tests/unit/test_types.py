"""Tier: ranks, routing up, and the order in which a tier's stand-ins are looked for."""

from __future__ import annotations

import pytest

from turnout.types import Tier

E, S, F = Tier.EFFICIENT, Tier.STANDARD, Tier.FRONTIER


@pytest.mark.parametrize(
    ("tier", "order"),
    [(E, (E, S, F)), (S, (S, F, E)), (F, (F, S, E))],
)
def test_route_order_goes_up_first_then_down_from_the_top(
    tier: Tier, order: tuple[Tier, ...]
) -> None:
    assert tier.route_order() == order


def test_up_stops_at_frontier_and_parse_is_forgiving() -> None:
    assert (E.up(), S.up(), F.up()) == (S, F, F)
    assert Tier.parse(" Frontier ") is F

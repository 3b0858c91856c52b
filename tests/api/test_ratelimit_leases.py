"""How many hits a worker takes ahead for a caller (pure logic of `sbx_api.ratelimit`)."""

from __future__ import annotations

from sbx_api.ratelimit import LEASE_SECONDS, MAX_LEASE, Lease, lease_size, per_minutes


def test_a_small_budget_is_never_leased() -> None:
    # 100 per minute lets fewer than two through in LEASE_SECONDS: one hit per call, exact.
    limit = per_minutes(100)
    assert lease_size(limit, None) == 1
    assert lease_size(limit, Lease(served=50)) == 1


def test_a_lease_doubles_what_the_last_one_served_up_to_the_limits_share() -> None:
    limit = per_minutes(1200)  # 20 in LEASE_SECONDS
    assert LEASE_SECONDS == 1.0
    assert lease_size(limit, None) == 1
    assert lease_size(limit, Lease(served=1)) == 2
    assert lease_size(limit, Lease(served=4)) == 8
    assert lease_size(limit, Lease(served=15)) == 20
    assert lease_size(limit, Lease(served=0)) == 1


def test_a_huge_budget_leases_at_most_max_lease() -> None:
    assert lease_size(per_minutes(10**9), Lease(served=10**6)) == MAX_LEASE

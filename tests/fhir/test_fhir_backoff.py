"""backoff_delay and Retry-After parsing: the properties the retrying task relies on."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.delivery.fhir_rest import backoff_delay, parse_retry_after

attempts = st.integers(min_value=1, max_value=10_000)
bases = st.floats(min_value=0.01, max_value=60)
caps = st.floats(min_value=0.01, max_value=3600)
retry_afters = st.none() | st.floats(min_value=0, max_value=100_000)


class Fixed:
    """An rng whose draw is chosen by the test."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@given(attempt=attempts, base=bases, cap=caps, seed=st.integers())
def test_within_the_exponential_ceiling(attempt: int, base: float, cap: float, seed: int) -> None:
    delay = backoff_delay(attempt, None, base=base, cap=cap, rng=random.Random(seed))
    assert 0 <= delay <= min(cap, base * 2.0 ** min(attempt - 1, 64))


@given(attempt=attempts, retry_after=retry_afters, cap=caps, seed=st.integers())
def test_never_shorter_than_retry_after(
    attempt: int, retry_after: float | None, cap: float, seed: int
) -> None:
    delay = backoff_delay(attempt, retry_after, cap=cap, rng=random.Random(seed))
    if retry_after is not None:
        assert delay >= retry_after
    if retry_after is None or retry_after <= cap:
        assert delay <= max(cap, retry_after or 0)


@given(draw=st.floats(min_value=0, max_value=0.999999))
def test_full_jitter_spans_zero_to_the_ceiling(draw: float) -> None:
    assert backoff_delay(4, None, base=2, cap=300, rng=Fixed(draw)) == pytest.approx(draw * 16)


def test_growth_and_cap() -> None:
    top = [backoff_delay(n, None, base=2, cap=300, rng=Fixed(0.999999)) for n in range(1, 12)]
    assert top[:5] == pytest.approx([2, 4, 8, 16, 32], rel=1e-5)
    assert max(top) == pytest.approx(300, rel=1e-5)
    assert backoff_delay(10**9, None, rng=Fixed(0.5)) == 150  # no overflow


def test_retry_after_above_the_cap_wins() -> None:
    assert backoff_delay(1, 3600, cap=300, rng=Fixed(0.5)) == 3600


def test_spread_is_real() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(6, None, rng=rng) for _ in range(200)]
    assert min(delays) < 8 and max(delays) > 56


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_counts_from_one(attempt: int) -> None:
    with pytest.raises(ValueError):
        backoff_delay(attempt, None)


NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 2 ", 2.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=45), usegmt=True), 45.0),
        (format_datetime(NOW - timedelta(seconds=45), usegmt=True), 0.0),
        ("Wed, 15 Jan 2025 12:01:00 GMT", 60.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected

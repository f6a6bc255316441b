"""Replay window: the Linux module's counter selftest (selftest/counter.c) as data."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgpy.core.constants import COUNTER_WINDOW_SIZE, REJECT_AFTER_MESSAGES
from wgpy.core.replay import ReplayWindow

LIM = COUNTER_WINDOW_SIZE + 1
RAM = REJECT_AFTER_MESSAGES

# (counter, accepted) in order, from one fresh window: the kernel's hand-written sequence.
KERNEL_SEQUENCE = [
    (0, True), (1, True), (1, False), (9, True), (8, True), (7, True), (7, False),
    (LIM, True), (LIM - 1, True), (LIM - 1, False), (LIM - 2, True), (2, True), (2, False),
    (LIM + 16, True), (3, False), (LIM + 16, False), (LIM * 4, True),
    (LIM * 4 - (LIM - 1), True), (10, False), (LIM * 4 - LIM, False),
    (LIM * 4 - (LIM + 1), False), (LIM * 4 - (LIM - 2), True), (LIM * 4 + 1 - LIM, False),
    (0, False), (RAM, False), (RAM - 1, True), (RAM, False), (RAM - 1, False),
    (RAM - 2, True), (RAM + 1, False), (RAM + 2, False), (RAM - 2, False), (RAM - 3, True),
    (0, False),
]


def _bulk_cases() -> dict[str, list[tuple[int, bool]]]:
    w = COUNTER_WINDOW_SIZE
    return {
        "ascending_then_zero": [(i, True) for i in range(1, w + 1)] + [(0, True), (0, False)],
        "from_two_then_one": [(i, True) for i in range(2, w + 2)] + [(1, True), (0, False)],
        "descending_from_window": [(i, True) for i in range(w, -1, -1)],
        "descending_past_window": [(i, True) for i in range(w + 1, 0, -1)] + [(0, False)],
        "descending_then_top": [(i, True) for i in range(w, 0, -1)] + [(w + 1, True),
                                                                        (0, False)],
        "descending_then_zero_then_top": [(i, True) for i in range(w, 0, -1)]
        + [(0, True), (w + 1, True)],
    }


def run(sequence: list[tuple[int, bool]]) -> None:
    window = ReplayWindow()
    for step, (counter, expected) in enumerate(sequence):
        assert window.would_accept(counter) == expected, (step, counter)
        assert window.validate(counter) == expected, (step, counter)


def test_kernel_hand_written_sequence():
    run(KERNEL_SEQUENCE)


@pytest.mark.parametrize("name", sorted(_bulk_cases()))
def test_kernel_bulk_sequences(name):
    run(_bulk_cases()[name])


@given(st.lists(st.integers(0, 3 * COUNTER_WINDOW_SIZE), max_size=200))
def test_matches_a_set_based_model(counters):
    """Accept iff unseen and not more than the window behind the greatest accepted."""
    window = ReplayWindow()
    seen: set[int] = set()
    greatest = -1
    for counter in counters:
        expected = counter not in seen and counter + COUNTER_WINDOW_SIZE >= greatest
        assert window.validate(counter) == expected
        if expected:
            seen.add(counter)
            greatest = max(greatest, counter)

"""ordered_map (runbook_lib/fleet/pool.py): results in the items' order at any concurrency,
bounded in flight, errors at their item's turn, the pool shut down when the caller stops."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator

import pytest

from runbook_lib.fleet.pool import ordered_map


def jittered_square(n: int) -> int:
    time.sleep(random.random() / 500)  # finish out of order
    return n * n


def pid_of(_: int) -> int:
    return os.getpid()


@pytest.mark.parametrize("workers", [1, 2, 7, 16])
def test_results_come_in_the_items_order_whatever_the_concurrency(workers: int) -> None:
    assert list(ordered_map(jittered_square, range(200), workers)) == [n * n for n in range(200)]


def test_processes_keep_the_order_and_run_elsewhere() -> None:
    assert list(ordered_map(jittered_square, range(50), 2, processes=True)) == [
        n * n for n in range(50)
    ]
    assert os.getpid() not in set(ordered_map(pid_of, range(20), 2, processes=True))


def test_no_more_than_the_window_is_in_flight_and_the_source_is_read_lazily() -> None:
    lock = threading.Lock()
    in_flight = peak = 0
    pulled: list[int] = []

    def work(n: int) -> int:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.002)
        with lock:
            in_flight -= 1
        return n

    def source() -> Iterator[int]:
        for n in range(10_000):
            pulled.append(n)
            yield n

    results = ordered_map(work, source(), 4, window=8)
    first = [next(results) for _ in range(3)]
    assert first == [0, 1, 2]
    assert len(pulled) <= 8 + 3  # never the whole stream
    results.close()  # the caller stops: the pool shuts down
    assert peak <= 4


def test_an_error_is_raised_at_its_turn_after_the_items_before_it() -> None:
    def fail_on_five(n: int) -> int:
        if n == 5:
            raise RuntimeError("five")
        return n

    got: list[int] = []
    with pytest.raises(RuntimeError, match="five"):
        for value in ordered_map(fail_on_five, range(20), 3):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]


def test_the_initializer_runs_once_per_worker() -> None:
    seen: list[str] = []

    def init() -> None:
        seen.append(threading.current_thread().name)

    list(ordered_map(jittered_square, range(40), 3, initializer=init))
    assert 1 <= len(seen) <= 3 and len(set(seen)) == len(seen)


@pytest.mark.parametrize(("workers", "window"), [(0, None), (4, 2)])
def test_nonsense_sizes_are_refused(workers: int, window: int | None) -> None:
    with pytest.raises(ValueError, match="workers|window"):
        list(ordered_map(jittered_square, range(3), workers, window=window))

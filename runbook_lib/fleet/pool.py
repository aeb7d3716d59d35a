"""Bounded, ordered concurrency for the fleet audit.

:func:`ordered_map` applies a function to a stream of items with ``workers`` threads or
processes and yields the results **in the items' order**, whatever order they finish in, with
at most ``window`` items in flight: memory stays flat in the number of accounts, and the
record is the same byte for byte at any concurrency.

Threads suit AWS's latency (a real round trip is tens of milliseconds, the GIL is free while
waiting); processes suit the client's CPU (botocore's request building and parsing hold the
GIL: against a local sandbox one process is CPU-bound). With processes, ``fn`` and the items
must be picklable, and ``initializer(*initargs)`` runs once per worker process (build the AWS
clients there, once).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    processes: bool = False,
    window: int | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple[Any, ...] = (),
    mp_context: Any = None,
) -> Iterator[R]:
    """``fn(item)`` for every item, yielded in order; ``window`` (default ``4 * workers``)
    bounds the items submitted but not yet yielded. An exception from ``fn`` is raised when
    its item's turn comes, after the items before it were yielded; nothing after it is
    yielded, and the pool is shut down (pending items cancelled) when the caller stops
    iterating. ``mp_context``: the processes' start method (e.g. spawn)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    limit = window or 4 * workers
    if limit < workers:
        raise ValueError(f"window ({limit}) must be at least workers ({workers})")
    if workers == 1 and not processes:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    executor: cf.Executor
    if processes:
        executor = cf.ProcessPoolExecutor(
            workers, mp_context=mp_context, initializer=initializer, initargs=initargs
        )
    else:
        executor = cf.ThreadPoolExecutor(
            workers, thread_name_prefix="fleet", initializer=initializer, initargs=initargs
        )
    pending: deque[cf.Future[R]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append(executor.submit(fn, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)

"""Extra callbacks the train task calls after each tracked epoch: notifications, custom stops, fault drills.

The train task runs in a Prefect worker thread, so a hook is registered process-wide for the
duration of a `with epoch_hook(...)` block. A hook that raises fails the train task like any
other error; Prefect then retries the task (`train.retries`) and training resumes from the
checkpoint of the last finished epoch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from components.training import EpochReport

EpochHook = Callable[[EpochReport], None]
_HOOKS: list[EpochHook] = []
_LOCK = threading.Lock()


@contextmanager
def epoch_hook(hook: EpochHook) -> Iterator[None]:
    """Call `hook(report)` after every epoch of every training run in this process, inside the block."""
    with _LOCK:
        _HOOKS.append(hook)
    try:
        yield
    finally:
        with _LOCK:
            _HOOKS.remove(hook)


def run_epoch_hooks(report: EpochReport) -> None:
    with _LOCK:
        hooks = list(_HOOKS)
    for hook in hooks:
        hook(report)

"""The garbage collector, once a process has started.

Everything made at start-up (modules, routes, settings, clients) lives as long as the process.
Frozen, it is left out of every later collection: without that, each full collection walks
it again, about 5% of a delivery worker's CPU in a py-spy profile (issue 13).
"""

from __future__ import annotations

import gc

# Collections of the youngest objects after this many allocations (Python's default: 700).
# A send makes a few dozen short-lived objects (a task, futures, dicts) while hundreds of
# sends are under way: at 700 the collector walked the live ones over and over (4% of a
# worker's CPU after the freeze); most objects are freed by their count before 20,000.
YOUNG_THRESHOLD = 20_000


def freeze_startup_objects() -> None:
    """Collect once, then keep what survived out of later collections."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)

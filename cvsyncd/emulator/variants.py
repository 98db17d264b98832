"""Which of its documented shapes each answer takes.

The docs, the two official SDKs and the live service show several shapes for the same
answer: ``social_content`` as an object or a list, marker URLs as a mapping or a list,
fields that were not asked for as ``[]``, ``null`` or missing, error bodies in five styles,
account bodies with or without a balance. A client that was only ever shown one of them
agrees with its emulator by construction. So the emulator has two modes:

- **canonical** (the default): always the first shape listed at each point below — the
  shape of the docs' main example;
- **varied** (``--vary SEED``): every answer picks among all the shapes, with a seeded RNG
  so that a run can be repeated exactly.

Each point of variation is named; ``Variants.served`` counts which option each point
served, so a test can prove that the variety really reached the client. The options come
from the docs and the SDKs (see docs/cleanvoice-api.md), not from the client's code.
"""

from __future__ import annotations

import collections
import random
import threading
from collections.abc import Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

# point → the names of its options, canonical first (what each means: docs/emulator.md)
POINTS: dict[str, tuple[str, ...]] = {
    "error-style": ("error", "detail", "detail-error", "message", "flat", "text"),
    "running-result": ("documented", "null", "empty", "absent"),
    "task-id": ("present", "absent"),
    "extra-keys": ("none", "unknown"),
    "success-without-result": ("0", "1", "2"),
    "not-asked": ("empty-list", "null", "absent"),
    "social-shape": ("mapping", "mapping-more", "list-text", "list-objects"),
    "markers-shape": ("mapping", "list", "list-no-extension", "list-with-json"),
    "download-extension": ("with", "without"),
    "filename-extension": ("without", "with"),
    "summaries": ("list", "empty-string"),
    "failure-shape": ("message", "error", "detail", "null", "beside"),
    "account-shape": ("v1", "sdk", "no-balance"),
    "missing-upload": ("fail-later", "refuse-at-create"),
    "uncertain-format": ("accept", "refuse"),
}


class Variants:
    """Picks an option at each point of variation: the canonical one, or a seeded choice."""

    def __init__(self, seed: int | None = None, pin: Mapping[str, str] | None = None):
        self.varied = seed is not None
        self.seed = seed
        self.pin = dict(pin or {})  # point → the option it always takes (tests)
        for point, option in self.pin.items():
            if option not in POINTS.get(point, ()):
                valid = ", ".join(POINTS.get(point, POINTS))
                raise ValueError(f"cannot pin {point} to {option!r} — valid: {valid}")
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.served: collections.Counter[tuple[str, str]] = collections.Counter()

    def pick(self, point: str) -> str:
        """Return the name of the option this answer takes at ``point``."""
        options = POINTS[point]
        with self._lock:
            if point in self.pin:
                choice = self.pin[point]
            else:
                choice = self._rng.choice(options) if self.varied else options[0]
            self.served[(point, choice)] += 1
        return choice

    def choose(self, point: str, values: Sequence[T]) -> T:
        """Return the value at the position of the option picked at ``point``."""
        return values[POINTS[point].index(self.pick(point))]

    def report(self) -> dict[str, dict[str, int]]:
        """What was served so far: point → option → count (for /_emulator/state)."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (point, option), count in sorted(self.served.items()):
                out.setdefault(point, {})[option] = count
        return out

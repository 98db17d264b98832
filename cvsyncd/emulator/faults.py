"""Fault injection: which failures the emulator may inject, on which endpoints, how often.

The daemon must survive a flaky network and a flaky service; these faults let tests make
that happen on purpose and reproducibly (a seeded RNG). A fault is picked per request, with
probability ``rate``, uniformly among the configured kinds that make sense for the endpoint
(a truncated body only where a body is downloaded, a processing failure only on create).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ENDPOINTS = ("upload", "put", "create", "get", "delete", "download", "account")

KINDS = (
    "429",
    "500",
    "502",
    "503",
    "500-after",
    "reset",
    "reset-after",
    "slow",
    "truncate",
    "badjson",
    "expired-url",
    "failure",
)

_API_COMMON = frozenset({"429", "500", "502", "503", "reset", "slow", "badjson"})
_STATEFUL = frozenset({"500-after", "reset-after"})

APPLICABLE: Mapping[str, frozenset[str]] = {
    "upload": _API_COMMON | _STATEFUL,
    "put": frozenset({"500", "502", "503", "reset", "slow", "expired-url"}) | _STATEFUL,
    "create": _API_COMMON | _STATEFUL | {"failure"},
    "get": _API_COMMON | _STATEFUL | {"truncate"},
    "delete": _API_COMMON | _STATEFUL,
    "download": frozenset({"500", "502", "503", "reset", "slow", "truncate", "expired-url"}),
    "account": _API_COMMON | {"truncate"},
}

# Answered instead of doing the work: the request has no effect.
BEFORE = frozenset({"429", "500", "502", "503", "reset", "expired-url"})
# The work is done, then the answer is spoiled.
AFTER = frozenset({"500-after", "reset-after", "badjson", "truncate"})


def _as_names(value: Iterable[str], valid: tuple[str, ...], what: str) -> frozenset[str]:
    if isinstance(value, str):
        raise ValueError(f"{what} must be a collection of names, not a string")
    names = frozenset(value)
    unknown = sorted(names - set(valid))
    if unknown:
        raise ValueError(f"unknown fault {what}: {', '.join(unknown)} — valid: {', '.join(valid)}")
    return names


@dataclass(frozen=True)
class FaultSettings:
    """How often (``rate``, 0…1) to inject which ``kinds`` of fault on which ``endpoints``.

    ``slow_seconds`` is the delay of the ``slow`` kind; ``retry_after`` the ``Retry-After``
    of injected 429s. Empty ``kinds`` or ``endpoints`` mean none: nothing is injected.
    """

    rate: float = 0.0
    kinds: frozenset[str] = field(default_factory=lambda: frozenset(KINDS))
    endpoints: frozenset[str] = field(default_factory=lambda: frozenset(ENDPOINTS))
    slow_seconds: float = 2.0
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, not {self.rate}")
        if self.slow_seconds < 0 or self.retry_after < 0:
            raise ValueError("slow_seconds and retry_after must not be negative")
        # Accept any iterable of names but always store frozensets (hashable, immutable).
        object.__setattr__(self, "kinds", _as_names(self.kinds, KINDS, "kinds"))
        object.__setattr__(self, "endpoints", _as_names(self.endpoints, ENDPOINTS, "endpoints"))

    def to_json(self) -> dict[str, Any]:
        """Return the settings as the admin endpoint shows them."""
        return {
            "rate": self.rate,
            "kinds": sorted(self.kinds),
            "endpoints": sorted(self.endpoints),
            "slow_seconds": self.slow_seconds,
            "retry_after": self.retry_after,
        }

    def updated(self, changes: Mapping[str, Any]) -> FaultSettings:
        """Given some fields from the admin endpoint, return new settings. Raise ValueError."""
        unknown = sorted(
            set(changes) - {"rate", "kinds", "endpoints", "slow_seconds", "retry_after"}
        )
        if unknown:
            raise ValueError(f"unknown fault setting: {', '.join(unknown)}")
        values: dict[str, Any] = dict(changes)
        for name in ("rate", "slow_seconds", "retry_after"):
            if name in values and (
                not isinstance(values[name], int | float) or isinstance(values[name], bool)
            ):
                raise ValueError(f"{name} must be a number")
        for name in ("kinds", "endpoints"):
            if name in values and not isinstance(values[name], list):
                raise ValueError(f"{name} must be a list of names")
        return replace(self, **values)


class FaultInjector:
    """Decides, per request and thread-safely, which fault (if any) to inject."""

    def __init__(self, settings: FaultSettings, seed: int | None = None):
        self._settings = settings
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def settings(self) -> FaultSettings:
        with self._lock:
            return self._settings

    def set(self, settings: FaultSettings) -> None:
        with self._lock:
            self._settings = settings

    def update(self, changes: Mapping[str, Any]) -> FaultSettings:
        """Apply some fields (see ``FaultSettings.updated``) atomically; return the result."""
        with self._lock:
            self._settings = self._settings.updated(changes)
            return self._settings

    def pick(self, endpoint: str) -> str | None:
        """Return the fault kind to inject into this request to ``endpoint``, or None."""
        with self._lock:
            settings = self._settings
            if settings.rate <= 0 or endpoint not in settings.endpoints:
                return None
            candidates = sorted(settings.kinds & APPLICABLE[endpoint])
            if not candidates or self._rng.random() >= settings.rate:
                return None
            return self._rng.choice(candidates)

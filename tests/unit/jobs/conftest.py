"""The store's contract tests run on both backends: the embedded SQLite file and the
shared PostgreSQL store (a real server the tests start, see tests/pgserver.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cvsyncd.jobs import Store


@dataclass
class Backend:
    """How to open (again) the store under test: ``open(site=…)``."""

    name: str
    open: Callable[..., Store]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":

        def open_sqlite(site: str = "site-a", **kw: object) -> Store:
            return Store.open(tmp_path / f"state-{site}", site=site, **kw)  # type: ignore[arg-type]

        return Backend("sqlite", open_sqlite)
    make = request.getfixturevalue("pg_shared")

    def open_pg(site: str = "site-a", **kw: object) -> Store:
        return Store.open(tmp_path / f"state-{site}", shared=make(site), **kw)  # type: ignore[arg-type]

    return Backend("postgres", open_pg)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    s = backend.open()
    yield s
    s.close()

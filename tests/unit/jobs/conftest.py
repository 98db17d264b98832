"""The store's contract tests run on both backends: the embedded SQLite file and the
shared PostgreSQL store (a real server the tests start, see tests/pgserver.py)."""

from __future__ import annotations

import itertools
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


FRESH = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Open a new, empty store each call (a new file; a new PostgreSQL database)."""
    if request.param == "sqlite":
        return lambda: Store.open(tmp_path / f"state-{next(FRESH)}")
    from cvsyncd.jobs.shared import SharedStore
    from tests.pgserver import PG_PASSWORD

    server = request.getfixturevalue("pg_server")

    def open_pg() -> Store:
        shared = SharedStore(server.url(server.database()), "site-a", PG_PASSWORD)
        return Store.open(tmp_path / f"state-{next(FRESH)}", shared=shared)

    return open_pg

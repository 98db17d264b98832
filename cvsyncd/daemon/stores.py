"""Opening the job store the config names: the SQLite file in ``[daemon] state_dir``, or
with ``[store]`` the PostgreSQL database several daemons share (docs/scale.md)."""

from __future__ import annotations

import os
from typing import Any

from cvsyncd.cleanvoice.client import CleanvoiceClient
from cvsyncd.config import Config
from cvsyncd.errors import StoreError
from cvsyncd.jobs import Store
from cvsyncd.jobs.shared import SharedStore


def shared_store(config: Config) -> SharedStore | None:
    """The ``[store]`` settings with the password read from its file; None: SQLite."""
    settings = config.store
    if settings is None:
        return None
    password = None
    if settings.password_file is not None:
        try:
            with open(settings.password_file, "rb") as stream:
                mode = os.fstat(stream.fileno()).st_mode
                if mode & 0o044:
                    raise StoreError(
                        f"the shared store's password file {settings.password_file} can be "
                        f"read by other users (mode {mode & 0o777:04o}), so it is not used: "
                        f"chmod 600 {settings.password_file}"
                    )
                password = stream.read().decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise StoreError(
                f"cannot read the shared store's password file {settings.password_file} "
                f"({reason}); fix [store] password_file or the file's owner and mode"
            ) from None
        if not password:
            raise StoreError(f"the shared store's password file {settings.password_file} is empty")
    return SharedStore(settings.url, settings.site, password)


def open_store(config: Config, **options: Any) -> Store:
    """``Store.open`` on the store the config names (options as there)."""
    return Store.open(config.daemon.state_dir, shared=shared_store(config), **options)


def open_existing(config: Config, *, verify: bool = True) -> Store | None:
    return Store.open_existing(config.daemon.state_dir, verify=verify, shared=shared_store(config))


def inspect(config: Config) -> tuple[int, int] | None:
    return Store.inspect(config.daemon.state_dir, shared_store(config))


def share_budget(config: Config, store: Store, client: CleanvoiceClient) -> None:
    """With the shared store, the key's request budget is kept there, for every site."""
    if config.store is not None:
        client.limiter.share(store.take_request, store.close_requests)

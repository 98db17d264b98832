"""The ``[store]`` section: where the job state lives when several daemons share it.

Without the section the state is the embedded SQLite file in ``[daemon] state_dir``, as
always. With ``url = "postgresql://user@host:5432/cvsyncd"`` it is that PostgreSQL
database, shared by every daemon (site) of one Cleanvoice account (docs/scale.md). The
password is never written in the URL (a config file is often readable by others, and a
URL ends up in logs): it comes from ``password_file`` (read when the store is opened), or
from libpq's own ``PGPASSWORD`` / ``~/.pgpass``. ``site`` names this daemon among them
(default: the host name).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cvsyncd.config.model import StoreSettings
from cvsyncd.config.schema import Invalid, Reader, Setting, check_path, get_table, read_table

SITE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def check_url(value: Any, reader: Reader) -> str:
    """A PostgreSQL URL without a password (the value itself is never repeated: it may
    hold one)."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be a text: postgresql://user@host:5432/database")
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise Invalid("is not a URL: postgresql://user@host:5432/database") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise Invalid(
            f"must start with postgresql:// (not {parts.scheme or 'no scheme'}://): the "
            "shared store is a PostgreSQL database"
        )
    if parts.password is not None:
        raise Invalid(
            "holds a password: a URL ends up in logs and a config file is often readable "
            "by others. Remove it from the URL and put it in a file named by "
            "[store] password_file (chmod 600), or in PGPASSWORD"
        )
    if not parts.hostname or not parts.path.strip("/"):
        raise Invalid("needs a host and a database: postgresql://user@host:5432/database")
    return value.strip()


def check_site(value: Any, reader: Reader) -> str:
    if not isinstance(value, str) or not SITE_RE.fullmatch(value):
        raise Invalid(
            "must be a short name of letters, digits, '.', '_' or '-' (at most 63), "
            "such as studio-berlin"
        )
    return value


def default_site() -> str:
    """The host name, cut to what a site name allows."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:63].lstrip("._-")
    return name or "cvsyncd"


STORE_KEYS: Mapping[str, Setting] = {
    "url": Setting(check_url, "postgresql://user@host:5432/database (no password)", None),
    "password_file": Setting(
        check_path, "the path of a file holding the database password, mode 0600", None
    ),
    "site": Setting(check_site, "a short name of this daemon among the sites", None),
}


def make_store(data: Mapping[str, Any], reader: Reader) -> StoreSettings | None:
    """The ``[store]`` section's settings; None without the section (or with problems)."""
    if "store" not in data:
        return None
    table = get_table(data, "store", reader)
    values = read_table(table, STORE_KEYS, "store", reader)
    if values.keys() != STORE_KEYS.keys():
        return None
    if values["url"] is None:
        reader.report(
            "store.url",
            "missing: a [store] section is for the shared PostgreSQL store",
            'url = "postgresql://cvsyncd@db.example:5432/cvsyncd", or remove [store] to keep '
            "the state in the SQLite file of [daemon] state_dir",
        )
        return None
    return StoreSettings(values["url"], values["password_file"], values["site"] or default_site())

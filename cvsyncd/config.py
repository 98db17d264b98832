"""Reading and validating the cvsyncd config file (TOML).

INTERFACE DRAFT — the parsing and validation are being written; the dataclasses and the
function signatures below are the contract the rest of the package relies on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

After = Literal["keep", "move", "delete"]


@dataclass(frozen=True)
class CleanvoiceSettings:
    base_url: str
    api_key_file: Path | None


@dataclass(frozen=True)
class DaemonSettings:
    state_dir: Path
    settle_seconds: float = 5.0
    poll_initial_seconds: float = 30.0
    poll_max_seconds: float = 120.0
    poll_min_seconds: float = 5.0
    max_concurrent_uploads: int = 2
    max_active_edits: int = 4
    log_level: str = "info"


@dataclass(frozen=True)
class Folder:
    """One watched inbox and where its results and used inputs go."""

    inbox: Path
    outbox: Path
    preset: str | None  # the name from [presets], None for an inline table
    options: Mapping[str, Any]  # the effective Cleanvoice edit config, read-only
    after: After
    done_dir: Path
    failed_dir: Path

    @property
    def key(self) -> str:
        """The stable identity of this folder in the job store."""
        return str(self.inbox)


@dataclass(frozen=True)
class Config:
    path: Path
    cleanvoice: CleanvoiceSettings
    daemon: DaemonSettings
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    folders: tuple[Folder, ...] = ()


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    raise NotImplementedError


def parse_config(
    data: Mapping[str, Any], source: Path, env: Mapping[str, str] | None = None
) -> Config:
    raise NotImplementedError


def read_api_key(config: Config, env: Mapping[str, str] | None = None) -> str:
    raise NotImplementedError

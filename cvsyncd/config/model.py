"""The config, as the rest of cvsyncd sees it: frozen dataclasses, and their defaults.

:func:`cvsyncd.config.load_config` makes them (``loading.py``); nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

After = Literal["keep", "move", "delete"]

DEFAULT_BASE_URL = "https://api.cleanvoice.ai/v2"
# What is taken from an inbox unless a folder says otherwise: the formats that the docs'
# error example, the Python SDK's upload check and the JS SDK all accept (AIFF and AVI
# from the SDKs). AAC, Ogg and Opus are named in one part of the docs but refused by the
# others; a folder may still list them (``cvsyncd check`` warns). See
# docs/cleanvoice-api.md, "Which files".
DEFAULT_EXTENSIONS = (
    "mp3",
    "wav",
    "m4a",
    "flac",
    "aiff",
    "aif",
    "mp4",
    "mov",
    "mkv",
    "webm",
    "avi",
)
# extensions some source accepts, but not all of them: taken only when a folder asks
UNCERTAIN_EXTENSIONS = frozenset({"aac", "ogg", "opus", "m4v", "wma", "oga"})
TRANSCRIPT_FORMATS = ("txt", "srt", "vtt", "json", "md", "html", "docx")
EMBED_PARTS = ("chapters", "tags", "cover")  # what may be written into the cleaned file
VIDEO_UPLOADS = ("auto", "full", "audio")  # how a video recording is sent


@dataclass(frozen=True)
class CleanvoiceSettings:
    base_url: str = DEFAULT_BASE_URL  # never ends with "/"
    api_key_file: Path | None = None
    submit_requests_per_minute: int = 30  # uploads and create-edits (the API's limit)
    status_requests_per_minute: int = 300  # status polls, deletes, account checks
    expected_processing_ratio: float = 0.125  # processing seconds per second of audio
    retention_seconds: float = 7 * 24 * 3600.0  # how long Cleanvoice keeps an edit's files
    max_answer_mb: float = 32.0  # the most read of one API answer (a result, an error)
    max_download_gb: float = 50.0  # the largest result file downloaded
    request_deadline_seconds: float = 120.0  # one API call, answer included


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
    resubmit_ambiguous: bool = False
    stop_grace_seconds: float = 60.0  # on SIGTERM, how long running steps may still take
    retry_initial_seconds: float = 5.0  # first wait after a transient failure; doubles
    retry_max_seconds: float = 900.0  # the longest wait between two attempts


@dataclass(frozen=True)
class BudgetSettings:
    """The spend guard (``[budget]``): what may be spent before a person says so.

    Hours are hours of audio, as probed on this machine before anything is uploaded; the
    day and the month are this machine's local calendar. None: no cap.
    """

    backlog_hours: float = 2.0  # a first inbox content above this is held (existing = "auto")
    hours_per_day: float | None = None  # all folders together
    hours_per_month: float | None = None  # all folders together
    unknown_duration_hours: float = 1.0  # what a recording of unknown length counts as


@dataclass(frozen=True)
class Folder:
    """One watched inbox and where its results and used inputs go."""

    inbox: Path
    outbox: Path
    preset: str | None  # the name from [presets], None for an inline table
    # The effective Cleanvoice edit config, read-only. Left out of the hash (a mapping has
    # none); equality still compares it.
    options: Mapping[str, Any] = field(hash=False)
    after: After
    done_dir: Path
    failed_dir: Path
    name: str = ""  # a label for logs and the CLI; "" means the inbox folder's name
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS  # lower case, no dot
    ignore: tuple[str, ...] = ()  # glob patterns, matched against names and relative paths
    watch: str = "auto"  # auto | events | poll
    rescan_seconds: float = 300.0
    multitrack: bool = False  # each immediate subfolder is one multi-track recording
    multitrack_settle_seconds: float = 60.0
    transcript_formats: tuple[str, ...] = ("txt", "srt", "vtt", "json")
    speakers: tuple[str, ...] = ()  # names for SPEAKER_00, SPEAKER_01, …
    on_conflict: str = "suffix"  # suffix | overwrite | skip
    # written into the cleaned MP3/M4A: chapters, tags (title, description, show), cover
    embed: tuple[str, ...] = EMBED_PARTS
    show: str | None = None  # the show's name: album and artist
    cover: Path | None = None  # artwork; None: cover.jpg/cover.png beside the input
    video_upload: str = "auto"  # auto | full | audio (send a video's sound alone)
    file_mode: int = 0o644
    group: str | None = None
    on_done: tuple[str, ...] = ()  # argv of a command run after a job is done
    on_failed: tuple[str, ...] = ()
    notify_url: str | None = None
    notify_secret_file: Path | None = None
    hook_timeout_seconds: float = 60.0
    # the spend guard: what is done with the recordings found when the folder is first
    # watched (auto | take | hold | skip), and this folder's own monthly cap in hours
    existing: str = "auto"
    hours_per_month: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if not self.name:
            object.__setattr__(self, "name", self.inbox.name or str(self.inbox))

    @property
    def key(self) -> str:
        """The stable identity of this folder in the job store."""
        return str(self.inbox)


@dataclass(frozen=True)
class WebSettings:
    """``[web]``: the dashboard, ``/healthz`` and ``/metrics``, served inside the daemon."""

    host: str = "127.0.0.1"  # an address or a name, without brackets
    port: int = 8750
    password_file: Path | None = None  # required unless ``host`` is loopback

    @property
    def listen(self) -> str:
        """``host:port`` as written in the config (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# what may send an alert ([alerts] events): job states, the account pause, an inbox gone
ALERT_EVENTS = ("failed", "needs_attention", "paused", "unavailable", "held", "store")


@dataclass(frozen=True)
class AlertSettings:
    """``[alerts]``: messages to people (Apprise URLs) when something needs them."""

    urls: tuple[str, ...] = ()  # hold tokens: never shown whole
    events: tuple[str, ...] = ALERT_EVENTS
    group_seconds: float = 60.0  # alerts of one kind within this window: one message

    def __repr__(self) -> str:  # the URLs hold tokens
        return f"AlertSettings(urls=<{len(self.urls)}>, events={self.events!r}, ...)"


@dataclass(frozen=True)
class StoreSettings:
    """``[store]``: the shared job store on PostgreSQL (no section: the SQLite file)."""

    url: str  # without a password
    password_file: Path | None = None  # else libpq's PGPASSWORD or ~/.pgpass
    site: str = ""  # this daemon among the sites (default: the host name)


@dataclass(frozen=True)
class Config:
    path: Path  # absolute
    cleanvoice: CleanvoiceSettings
    daemon: DaemonSettings
    # name → effective options (after `extends`), all read-only; not hashed, like options
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    folders: tuple[Folder, ...] = ()
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    web: WebSettings | None = None  # no [web] section: no dashboard
    alerts: AlertSettings = field(default_factory=AlertSettings)  # no urls: no alerts
    store: StoreSettings | None = None  # no [store] section: the SQLite file in state_dir

    def __post_init__(self) -> None:
        frozen = {name: MappingProxyType(dict(opts)) for name, opts in self.presets.items()}
        object.__setattr__(self, "presets", MappingProxyType(frozen))
        object.__setattr__(self, "folders", tuple(self.folders))

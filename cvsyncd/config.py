"""Reading and validating the cvsyncd config file (TOML).

The flow: :func:`load_config` reads a file and hands its tables to :func:`parse_config`,
which is pure. It checks everything, collects *every* problem in a
:class:`~cvsyncd.schema.Reader`, and either raises one :class:`~cvsyncd.errors.ConfigError`
holding all of them or returns a frozen :class:`Config`. Nothing here looks at the folders
on disk; ``cvsyncd check`` and the daemon do that at run time. The API key is found only
when it is needed, by :func:`cvsyncd.apikey.read_api_key` (also importable from here).

Each section is described by a small schema, ``{key: Setting(check, valid, default)}``
(``CLEANVOICE_KEYS``, ``DAEMON_KEYS``, ``FOLDER_KEYS``), checked by the machinery in
:mod:`cvsyncd.schema`: a new key is one line there and one field in the matching dataclass.
The Cleanvoice options inside presets are checked by :mod:`cvsyncd.presets`; preset
inheritance (``extends``) is resolved here, and so are the rules between folders.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from . import presets
from .apikey import API_KEY_VARIABLE, CREDENTIAL_NAME
from .apikey import read_api_key as read_api_key  # re-exported for cli and checks
from .errors import ConfigError, Problem
from .schema import (
    Invalid,
    Reader,
    Setting,
    boolean,
    choice,
    describe,
    file_mode,
    get_table,
    home_dir,
    integer,
    key_path,
    number,
    optional_text,
    path,
    read_table,
    show_value,
    strings,
    suggest,
    text,
    unknown_key,
)

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
    file_mode: int = 0o644
    group: str | None = None
    on_done: tuple[str, ...] = ()  # argv of a command run after a job is done
    on_failed: tuple[str, ...] = ()
    notify_url: str | None = None
    notify_secret_file: Path | None = None
    hook_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if not self.name:
            object.__setattr__(self, "name", self.inbox.name or str(self.inbox))

    @property
    def key(self) -> str:
        """The stable identity of this folder in the job store."""
        return str(self.inbox)


@dataclass(frozen=True)
class Config:
    path: Path  # absolute
    cleanvoice: CleanvoiceSettings
    daemon: DaemonSettings
    # name → effective options (after `extends`), all read-only; not hashed, like options
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    folders: tuple[Folder, ...] = ()

    def __post_init__(self) -> None:
        frozen = {name: MappingProxyType(dict(opts)) for name, opts in self.presets.items()}
        object.__setattr__(self, "presets", MappingProxyType(frozen))
        object.__setattr__(self, "folders", tuple(self.folders))


# -- checks for values of this file's own kinds ---------------------------------------------


def check_base_url(value: Any, reader: Reader) -> str:
    """Return the API base URL without a trailing slash; http only to a loopback host."""
    if not isinstance(value, str):
        raise Invalid(f"{describe(value)} is not a URL")
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise Invalid("must not contain a user name or password")  # so it is not repeated
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise Invalid(f"{show_value(value)} has an invalid port number") from None
    fixed = show_value("https://" + value.split("://", 1)[-1].lstrip("/"))
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{show_value(value)} is not an http(s) URL with a host; write {fixed}")
    if parts.query or parts.fragment:
        raise Invalid(f"{show_value(value)} must not have a ?query or #fragment")
    if parts.scheme.lower() == "http" and not is_loopback(parts.hostname):
        raise Invalid(
            f"http:// would send the API key unencrypted to {parts.hostname}; it is only for a "
            f"local emulator (127.0.0.1, localhost, ::1). Write {fixed} instead"
        )
    return value.rstrip("/")


def is_loopback(host: str) -> bool:
    """Return whether ``host`` names this machine's loopback interface."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_preset_ref(value: Any, reader: Reader) -> str | dict[str, Any]:
    if not isinstance(value, str | dict):
        raise Invalid(f"{describe(value)} is neither a preset name nor a table")
    return value


def check_notify_url(value: Any, reader: Reader) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{describe(value)} is not a URL")
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return value
    raise Invalid(
        f"{show_value(value)} is not an https:// URL (http:// is accepted only for "
        "127.0.0.1, localhost or ::1)"
    )


# -- the schema of each section -------------------------------------------------------------

CLEANVOICE_KEYS: Mapping[str, Setting] = {
    "base_url": Setting(
        check_base_url, f"an https:// URL such as {DEFAULT_BASE_URL}", DEFAULT_BASE_URL
    ),
    "api_key_file": path(None, "the path of a file holding the API key, mode 0600"),
    "submit_requests_per_minute": integer(30, at_least=1),
    "status_requests_per_minute": integer(300, at_least=1),
    "expected_processing_ratio": number(0.125, above=0),
    "retention_seconds": number(7 * 24 * 3600.0, above=0),
    "max_answer_mb": number(32.0, above=0),
    "max_download_gb": number(50.0, above=0),
    "request_deadline_seconds": number(120.0, above=0),
}

DAEMON_KEYS: Mapping[str, Setting] = {
    "state_dir": path(None),
    "settle_seconds": number(5.0, above=0),
    "poll_initial_seconds": number(30.0, above=0),
    "poll_max_seconds": number(120.0, above=0),
    "poll_min_seconds": number(5.0, above=0),
    "max_concurrent_uploads": integer(2, at_least=1),
    "max_active_edits": integer(4, at_least=1),
    "log_level": choice("info", "debug", "info", "warning", "error", fold_case=True),
    "resubmit_ambiguous": boolean(False),
    "stop_grace_seconds": number(60.0, above=0),
    "retry_initial_seconds": number(5.0, above=0),
    "retry_max_seconds": number(900.0, above=0),
}

FOLDER_KEYS: Mapping[str, Setting] = {
    "inbox": path(valid='a folder path, e.g. inbox = "/srv/podcast/inbox"'),
    "outbox": path(valid='a folder path, e.g. outbox = "/srv/podcast/outbox"'),
    "preset": Setting(
        check_preset_ref, 'a preset name, e.g. preset = "podcast", or an inline table of options'
    ),
    "after": choice("keep", "keep", "move", "delete"),
    "done_dir": path(None),
    "failed_dir": path(None),
    "name": text(None),
    # what is taken from the inbox
    "extensions": strings(
        DEFAULT_EXTENSIONS,
        valid='file extensions such as "mp3", "wav"',
        normalize=lambda e: e.lower().lstrip("."),
    ),
    "ignore": strings(valid='glob patterns of names to ignore, e.g. ["*.bak", "raw/*"]'),
    "watch": choice("auto", "auto", "events", "poll"),
    "rescan_seconds": number(300.0, above=0),
    "multitrack": boolean(False),
    "multitrack_settle_seconds": number(60.0, above=0),
    # what is written to the outbox
    "transcript_formats": strings(
        ("txt", "srt", "vtt", "json"),
        allowed=TRANSCRIPT_FORMATS,
        valid=", ".join(TRANSCRIPT_FORMATS),
    ),
    "speakers": strings(valid='names for SPEAKER_00, SPEAKER_01 …, e.g. ["Ana", "Ben"]'),
    "on_conflict": choice("suffix", "suffix", "overwrite", "skip"),
    "file_mode": file_mode(0o644),
    "group": optional_text("a group name or number that may read the outputs"),
    # telling others
    "on_done": strings(valid='a command and its arguments, e.g. ["/usr/local/bin/publish"]'),
    "on_failed": strings(valid='a command and its arguments, e.g. ["notify-send", "cvsyncd"]'),
    "notify_url": Setting(
        check_notify_url, "an https:// URL (http:// only for this machine)", None
    ),
    "notify_secret_file": path(None, "a file holding the webhook signing secret, mode 0600"),
    "hook_timeout_seconds": number(60.0, above=0),
}

TOP_KEYS = ("cleanvoice", "daemon", "presets", "folders")


# -- sections -------------------------------------------------------------------------------


def default_state_dir(env: Mapping[str, str]) -> Path:
    """Return where the state lives when ``daemon.state_dir`` is not given.

    ``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``; its first entry if there are
    several), else ``$XDG_STATE_HOME/cvsyncd``, else ``~/.local/state/cvsyncd``.
    """
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(os.path.abspath(systemd))
    xdg = env.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says to ignore a relative path
        return Path(xdg) / "cvsyncd"
    return home_dir(env) / ".local" / "state" / "cvsyncd"


def make_cleanvoice(data: Mapping[str, Any], reader: Reader) -> CleanvoiceSettings | None:
    table = dict(get_table(data, "cleanvoice", reader))
    if table.pop("api_key", None) is not None:  # the value is not repeated
        reader.report(
            "cleanvoice.api_key",
            "the API key itself does not belong in the config file",
            f"api_key_file = a file of mode 0600 holding the key, the systemd credential "
            f"{CREDENTIAL_NAME}, or ${API_KEY_VARIABLE}",
        )
    values = read_table(table, CLEANVOICE_KEYS, "cleanvoice", reader)
    return CleanvoiceSettings(**values) if values.keys() == CLEANVOICE_KEYS.keys() else None


# Rules between daemon keys: (key, relation, other). The rule is reported at ``key``, or
# at ``other`` if only that one was written in the file.
DAEMON_ORDER = (
    ("poll_max_seconds", "≥", "poll_initial_seconds"),
    ("poll_min_seconds", "≤", "poll_max_seconds"),
    ("retry_max_seconds", "≥", "retry_initial_seconds"),
)
FLIPPED = {"≥": "≤", "≤": "≥"}


def make_daemon(data: Mapping[str, Any], reader: Reader) -> DaemonSettings | None:
    table = get_table(data, "daemon", reader)
    values = read_table(table, DAEMON_KEYS, "daemon", reader)
    if values.get("state_dir", "") is None:
        values["state_dir"] = default_state_dir(reader.env)
    for key, relation, other in DAEMON_ORDER:
        if key not in values or other not in values:
            continue
        if key not in table and other in table:
            key, relation, other = other, FLIPPED[relation], key
        value, limit = values[key], values[other]
        if (value < limit) if relation == "≥" else (value > limit):
            reader.report(
                f"daemon.{key}",
                f"must be {relation} {other} ({show_value(limit)}), got {show_value(value)}",
                f"a number > 0 and {relation} {other}",
            )
    return DaemonSettings(**values) if values.keys() == DAEMON_KEYS.keys() else None


# -- presets and their inheritance ----------------------------------------------------------


@dataclass(frozen=True)
class PresetTable:
    """One preset as written: where, its own valid options (normalised), what it extends."""

    where: str
    options: Mapping[str, Any]
    extends: str | None
    ok: bool


class PresetBook:
    """The named presets of one file, and their effective options once resolved."""

    def __init__(self, data: Mapping[str, Any], reader: Reader):
        self.reader = reader
        section = get_table(data, "presets", reader)
        self.names = [name for name, table in section.items() if isinstance(table, dict)]
        self.tables: dict[str, PresetTable] = {}
        self.resolved: dict[str, dict[str, Any] | None] = {}
        for name, table in section.items():
            where = key_path("presets", name)
            if isinstance(table, dict):
                self.tables[name] = self.read(table, where)
                continue
            hint = ""
            if name in presets.VOCABULARY or name in presets.ALIASES:
                hint = f"; `{name}` is an option: put it in a named preset such as [presets.talk]"
            reader.report(where, f"must be a table of Cleanvoice options{hint}", f"[{where}]")
        for name, preset in self.tables.items():
            options = self.resolve(name)
            if options is not None:
                reader.problems += presets.validate_requirements(options, reader.file, preset.where)

    def read(self, table: Mapping[str, Any], where: str) -> PresetTable:
        """Given one preset table (named or inline), check its own keys and ``extends``."""
        found = presets.validate_values(table, self.reader.file, where, extra_keys=("extends",))
        extends = table.get("extends")
        if extends is not None and (not isinstance(extends, str) or extends not in self.names):
            if isinstance(extends, str):
                message = f"no preset named {show_value(extends)}{suggest(extends, self.names)}"
            else:
                message = f"{describe(extends)} is not a preset name"
            found.append(Problem(self.reader.file, f"{where}.extends", message, self.valid()))
        self.reader.problems += found
        options = presets.normalize_options({k: v for k, v in table.items() if k != "extends"})
        return PresetTable(where, options, extends if isinstance(extends, str) else None, not found)

    def valid(self) -> str:
        """Return, in words, the preset names that may be used."""
        if not self.names:
            return "no presets are defined in this file; add a [presets.NAME] table"
        return "one of the presets in this file: " + ", ".join(show_value(n) for n in self.names)

    def resolve(self, name: str, trail: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """Return the effective options of the named preset, or None if it, or a preset it
        extends, is broken. A cycle is reported once, at the ``extends`` that closes it."""
        if name in trail:
            cycle = " → ".join((*trail[trail.index(name) :], name))
            self.reader.report(
                f"{self.tables[trail[-1]].where}.extends",
                f"presets extend each other in a circle: {cycle}",
                "a chain of `extends` that ends at a preset without one",
            )
            return None
        if name not in self.resolved:
            self.resolved[name] = self.merge(self.tables[name], (*trail, name))
        return self.resolved[name]

    def merge(self, table: PresetTable, trail: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """Return ``table``'s options on top of those of the preset it extends."""
        if not table.ok:
            return None
        base = {} if table.extends is None else self.resolve(table.extends, trail)
        return None if base is None else {**base, **table.options}

    def effective(self) -> dict[str, dict[str, Any]]:
        return {name: options for name, options in self.resolved.items() if options is not None}


# -- folders --------------------------------------------------------------------------------


def read_folder(entry: Mapping[str, Any], where: str, book: PresetBook) -> dict[str, Any]:
    """Given one [[folders]] table, return its valid values, defaults filled in where they
    can be, and the effective options of its preset (as ``options``) if it has no problems.
    """
    reader = book.reader
    values = read_table(entry, FOLDER_KEYS, where, reader)
    reference = values.pop("preset", None)
    if isinstance(reference, dict):
        inline = book.read(reference, f"{where}.preset")
        options = book.merge(inline)
        if options is not None:
            reader.problems += presets.validate_requirements(options, reader.file, inline.where)
        values["preset"], values["options"] = None, options
    elif isinstance(reference, str) and reference in book.tables:
        values["preset"], values["options"] = reference, book.resolve(reference)
    elif isinstance(reference, str):
        reader.report(
            f"{where}.preset",
            f"no preset named {show_value(reference)}{suggest(reference, book.names)}",
            book.valid() + "; or an inline table such as preset = { fillers = true }",
        )
    if "inbox" in values:
        inbox = values["inbox"]
        for key, default in (("done_dir", inbox / "done"), ("failed_dir", inbox / "failed")):
            if key in values and values[key] is None:
                values[key] = default
        if values.get("name", "") is None:
            values["name"] = inbox.name or str(inbox)
    check_folder_places(values, where, reader)
    return values


def inside(place: Path, folder: Path) -> bool:
    """Return whether ``place`` is ``folder`` or lies somewhere below it."""
    return place.is_relative_to(folder)


def check_folder_places(values: Mapping[str, Any], where: str, reader: Reader) -> None:
    """Report the problems of one folder's places among themselves (those that are known)."""
    inbox, outbox = values.get("inbox"), values.get("outbox")
    taken = "results would be taken as new recordings"
    if inbox and outbox and inbox == outbox:
        reader.report(f"{where}.outbox", f"is the inbox itself; {taken}", "a folder of its own")
    elif inbox and outbox and inside(outbox, inbox):
        reader.report(
            f"{where}.outbox",
            f"lies inside the inbox ({inbox}); {taken}",
            "a folder outside the inbox",
        )
    elif inbox and outbox and inside(inbox, outbox):
        reader.report(
            f"{where}.inbox",
            f"lies inside the outbox ({outbox}); recordings and results would mix",
            "a folder outside the outbox",
        )
    for key, default in (("done_dir", "done"), ("failed_dir", "failed")):
        place = values.get(key)
        valid = "a folder of its own outside the outbox"
        if inbox:
            valid += f', such as the default "{inbox / default}"'
        if place and place in (inbox, outbox):
            which = "inbox" if place == inbox else "outbox"
            reader.report(f"{where}.{key}", f"is the {which} itself", valid)
        elif place and outbox and inside(place, outbox):
            reader.report(
                f"{where}.{key}",
                f"lies inside the outbox ({outbox}); inputs and results would mix",
                valid,
            )
    if values.get("done_dir") and values.get("done_dir") == values.get("failed_dir"):
        reader.report(
            f"{where}.failed_dir",
            "is the same folder as done_dir; used and failed inputs would mix",
            "a folder of its own",
        )


def check_folders_apart(folders: list[tuple[str, dict[str, Any]]], reader: Reader) -> None:
    """Report the problems between folders: shared or nested inboxes, an outbox inside
    another folder's inbox, and a name used twice."""
    for index, (where, folder) in enumerate(folders):
        inbox, outbox, name = folder.get("inbox"), folder.get("outbox"), folder.get("name")
        for other_where, other in folders[:index]:
            other_inbox = other.get("inbox")
            if not inbox or not other_inbox:
                message = ""
            elif inbox == other_inbox:
                message = f"is also the inbox of {other_where}"
            elif inside(inbox, other_inbox):
                message = f"lies inside the inbox of {other_where} ({other_inbox})"
            elif inside(other_inbox, inbox):
                message = f"contains the inbox of {other_where} ({other_inbox})"
            else:
                message = ""
            if message:
                valid = "inboxes apart from each other: each recording belongs to one folder"
                reader.report(f"{where}.inbox", message, valid)
            if name and name == other.get("name"):
                reader.report(
                    f"{where}.name",
                    f"{show_value(name)} is also the name of {other_where} "
                    "(a folder is named after its inbox unless it has a name = …)",
                    "a name of its own for each folder",
                )
        for other_where, other in folders:
            other_inbox = other.get("inbox")
            if other is folder or not outbox or not other_inbox:
                continue
            if inside(outbox, other_inbox):
                reader.report(
                    f"{where}.outbox",
                    f"lies inside the inbox of {other_where} ({other_inbox}); results would be "
                    "taken as new recordings",
                    "a folder outside every inbox",
                )


def make_folders(data: Mapping[str, Any], book: PresetBook) -> tuple[Folder, ...]:
    """Return the folders of the file; none if any of them has a problem."""
    reader = book.reader
    entries = data.get("folders", [])
    if isinstance(entries, dict):
        reader.report("folders", "must be an array of tables", "[[folders]], in double brackets")
        return ()
    if not isinstance(entries, list) or not entries:
        reader.report(
            "folders", "no folders to watch", "a [[folders]] table with inbox, outbox and preset"
        )
        return ()
    before = len(reader.problems)
    read: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(entries, start=1):
        where = f"folders[{index}]"
        if isinstance(entry, dict):
            read.append((where, read_folder(entry, where, book)))
        else:
            reader.report(where, f"must be a table, not {describe(entry)}", "a [[folders]] table")
    check_folders_apart(read, reader)
    if len(reader.problems) > before or any(v.get("options") is None for _, v in read):
        return ()  # a broken named preset is reported at [presets]
    return tuple(Folder(**values) for _, values in read)


# -- the file as a whole --------------------------------------------------------------------


def parse_config(
    data: Mapping[str, Any], source: Path, env: Mapping[str, str] | None = None
) -> Config:
    """Given the tables of a config file read from ``source``, return its Config.

    Relative paths are taken from the folder of ``source``; defaults may come from ``env``
    (``os.environ`` if None). Nothing is read from disk. Raise ConfigError holding every
    problem if there are any.
    """
    absolute = Path(os.path.abspath(source))
    reader = Reader(str(source), absolute.parent, os.environ if env is None else env)
    for key in data:
        if key not in TOP_KEYS:
            reader.problems.append(
                unknown_key(reader.file, key_path("", key), key, TOP_KEYS, TOP_KEYS)
            )
    cleanvoice = make_cleanvoice(data, reader)
    daemon = make_daemon(data, reader)
    book = PresetBook(data, reader)
    folders = make_folders(data, book)
    if reader.problems or cleanvoice is None or daemon is None or not folders:
        raise ConfigError(reader.problems)
    return Config(absolute, cleanvoice, daemon, book.effective(), folders)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read the config file at ``path`` and return its Config.

    Raise ConfigError if the file cannot be read, is not TOML, or has any problem.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as error:
        problem = Problem(file, "", f"cannot read the config file: {error.strerror}")
        raise ConfigError([problem]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(file, "", "is not UTF-8 text", "TOML in UTF-8")]) from None
    except tomllib.TOMLDecodeError as error:
        found = re.fullmatch(r"(.*) \((at .*)\)", str(error))
        what, where = found.groups() if found else (str(error), "")
        message = f"invalid TOML {where}: {what}" if where else f"invalid TOML: {what}"
        raise ConfigError([Problem(file, "", message, "TOML, see https://toml.io")]) from None
    return parse_config(data, Path(file), env)

"""What ``cvsyncd init`` does: ask a few questions and write a commented starter config.

Three pure steps the CLI strings together: :func:`ask` puts the questions through a
prompt function (``input`` in the CLI, a list of answers in tests) and returns the answers;
:func:`starter_config` renders them as a commented config file; :func:`write_starter`
checks that text with the real config parser and creates the file, private to its owner,
never over an existing one. Values are written by ``tomli_w`` (so any path is quoted and
escaped correctly); only the comments around them are text.
"""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import tomli_w

from cvsyncd.config import DEFAULT_BASE_URL, DaemonSettings, parse_config
from cvsyncd.config.web import DEFAULT_LISTEN
from cvsyncd.errors import CvsyncdError


@dataclass(frozen=True)
class Starter:
    """A named preset to begin with: what it is for, and its Cleanvoice options."""

    name: str
    description: str
    options: Mapping[str, Any]


STARTERS: Mapping[str, Starter] = MappingProxyType(
    {
        starter.name: starter
        for starter in (
            Starter(
                "podcast",
                "a spoken show: fillers, long silences, stutters, mouth sounds and noise out; "
                "even loudness",
                {
                    "fillers": True,
                    "long_silences": True,
                    "stutters": True,
                    "mouth_sounds": True,
                    "remove_noise": True,
                    "normalize": True,
                },
            ),
            Starter(
                "interview",
                "a conversation: fillers, long silences and noise out; even loudness; a transcript",
                {
                    "fillers": True,
                    "long_silences": True,
                    "remove_noise": True,
                    "normalize": True,
                    "transcription": True,
                },
            ),
            Starter(
                "noise-only",
                "only background noise out; every word and pause kept",
                {
                    "fillers": False,
                    "long_silences": False,
                    "stutters": False,
                    "mouth_sounds": False,
                    "remove_noise": True,
                },
            ),
        )
    }
)

AFTER_CHOICES = {
    "keep": "leave the recording where it is",
    "move": "move the recording into <inbox>/done",
    "delete": "delete the recording",
}
DEFAULTS: Mapping[str, str] = MappingProxyType(
    {"inbox": "~/cvsyncd/inbox", "preset": "podcast", "after": "keep"}
)
MAX_TRIES = 5  # wrong answers to one question before ask() gives up

HEADER = """\
# cvsyncd configuration, written by `cvsyncd init`.
#
# `cvsyncd check -c <this file>` reads it, reports every problem at once, and contacts
# the API. docs/config.md lists every key with its type and default.
# Paths: "~" is the home folder of the user the daemon runs as; a relative path is taken
# from the folder of this file.

"""

CLEANVOICE_NOTE = """\
# The API key is never written here. cvsyncd looks for it, in this order: the systemd
# credential cleanvoice_api_key (LoadCredential=), the file named by api_key_file (which
# only its owner may read: chmod 600), the environment variable CLEANVOICE_API_KEY.
"""

DAEMON_NOTE = """\
# Where the job database lives. Default: $STATE_DIRECTORY (systemd's StateDirectory=),
# else $XDG_STATE_HOME/cvsyncd, else ~/.local/state/cvsyncd. It must be a local disk.
"""

PRESET_NOTE = """\
# Cleanvoice options, named as the API names them (docs/config.md lists them all). Only
# the options set here are sent; Cleanvoice's defaults apply to the rest.
"""

BUDGET_NOTE = """\
# What may be spent before you say so (hours of audio, measured here before any upload).
# Recordings already in an inbox at the first start are held when they come to more than
# backlog_hours; caps hold what would go over them (your local calendar). `cvsyncd status`
# says why a recording is held; `cvsyncd release` lets it go; `cvsyncd estimate` shows
# what would be taken, without uploading anything.
"""

WEB_NOTE = """\
# The dashboard in a browser tab, /healthz and /metrics (needs pip install 'cvsyncd[web]').
# Anywhere but 127.0.0.1 or [::1] it needs a password_file (mode 0600); for access from
# other machines, put it behind a reverse proxy with TLS (docs/service.md).
"""
WEB_PASSWORD_NOTE = "required unless listen is on this machine"

FOLDER_NOTE = """\
# One [[folders]] table per watched inbox. Recordings dropped into the inbox (and its
# subfolders) are cleaned; results appear in the outbox, in the same subfolders.
"""


def toml_lines(table: Mapping[str, Any]) -> str:
    """Return ``key = value`` lines for a flat table, as TOML."""
    return tomli_w.dumps(dict(table))


def commented(table: Mapping[str, Any], note: str = "") -> str:
    """Return ``# key = value`` lines: settings shown with their value, but not set."""
    lines = [f"# {line}" for line in toml_lines(table).splitlines()]
    if note:
        lines[-1] += f"    # {note}"
    return "\n".join(lines) + "\n"


def daemon_default(name: str) -> Any:
    """Return the default of a :class:`DaemonSettings` field (5.0 shown as 5)."""
    value = next(f.default for f in dataclasses.fields(DaemonSettings) if f.name == name)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def starter_config(
    inbox: str | os.PathLike[str],
    outbox: str | os.PathLike[str],
    preset_name: str,
    preset_options: Mapping[str, Any],
    after: str,
    api_key_file: str | os.PathLike[str] | None,
    web_listen: str | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    web_password_file: str | os.PathLike[str] | None = None,
) -> str:
    """Return the text of a commented config watching ``inbox`` into ``outbox`` with the
    preset ``preset_name`` (``preset_options``), doing ``after`` with used recordings, and
    reading the API key from ``api_key_file`` (None: a credential or the environment),
    with the dashboard on ``web_listen`` (None: shown commented out), guarded by the
    password in ``web_password_file`` (None: shown commented out), and the state in
    ``state_dir`` (None: the default, shown commented out).

    The text is not checked here; :func:`write_starter` does that.
    """
    inbox, outbox = os.fspath(inbox), os.fspath(outbox)
    starter = STARTERS.get(preset_name)
    about = f"The preset {json.dumps(preset_name)}" + (
        f": {starter.description}." if starter else "."
    )
    about = textwrap.fill(about, width=90, initial_indent="# ", subsequent_indent="# ") + "\n"
    parts = [HEADER, "[cleanvoice]\n", CLEANVOICE_NOTE]
    if api_key_file is None:
        parts.append(commented({"api_key_file": "/etc/cvsyncd/api_key"}))
    else:
        parts.append(toml_lines({"api_key_file": os.fspath(api_key_file)}))
    parts += [commented({"base_url": DEFAULT_BASE_URL}, "the default"), "\n"]

    parts += ["[daemon]\n", DAEMON_NOTE]
    if state_dir is None:
        parts.append(commented({"state_dir": "~/.local/state/cvsyncd"}))
    else:
        parts.append(toml_lines({"state_dir": os.fspath(state_dir)}))
    parts.append(
        commented(
            {"settle_seconds": daemon_default("settle_seconds")},
            "a new file is taken once unchanged this long",
        )
    )
    parts += [
        commented({"log_level": daemon_default("log_level")}, "debug | info | warning | error")
    ]
    parts.append("\n")

    parts += ["[budget]\n", BUDGET_NOTE]
    parts.append(toml_lines({"backlog_hours": 2}))
    parts.append(commented({"hours_per_day": 3}, "all folders together; no cap unless set"))
    parts.append(commented({"hours_per_month": 40}))
    parts.append("\n")

    parts += [about, PRESET_NOTE]
    parts += [tomli_w.dumps({"presets": {preset_name: dict(preset_options)}}), "\n"]

    parts += [FOLDER_NOTE, "[[folders]]\n"]
    parts.append(toml_lines({"inbox": inbox, "outbox": outbox, "preset": preset_name}))
    parts.append("# What happens to a recording once all its results are written:\n")
    parts += [f"#   {choice}: {what}\n" for choice, what in AFTER_CHOICES.items()]
    parts.append(toml_lines({"after": after}))
    inbox_path = Path(inbox)
    parts.append(commented({"done_dir": str(inbox_path / "done")}, "where after = move puts it"))
    parts.append(
        commented(
            {"failed_dir": str(inbox_path / "failed")},
            "failed recordings, next to <name>.error.txt",
        )
    )
    parts.append(
        commented({"existing": "auto"}, "recordings there at the first start: auto|take|hold|skip")
    )
    parts += ["\n", WEB_NOTE]
    if web_listen is None:
        parts.append(
            "# To turn it on, add:\n"
            f'#   [web]\n#   listen = "{DEFAULT_LISTEN}"\n'
            f'#   password_file = "/etc/cvsyncd/web_password"    # {WEB_PASSWORD_NOTE}\n'
        )
    else:
        parts += ["[web]\n", toml_lines({"listen": web_listen})]
        if web_password_file is None:
            parts.append(
                commented({"password_file": "/etc/cvsyncd/web_password"}, WEB_PASSWORD_NOTE)
            )
        else:
            parts.append(toml_lines({"password_file": os.fspath(web_password_file)}))
    return "".join(parts)


def ask_dashboard(prompt_fn: Callable[[str], str], default: bool) -> str | None:
    """Ask whether to turn the dashboard on; return its ``listen`` or None."""
    shown = "Y/n" if default else "y/N"
    for _ in range(MAX_TRIES):
        answer = (
            prompt_fn(
                f"Serve the web dashboard (status, jobs, retry, pause) on http://{DEFAULT_LISTEN}/"
                f", this machine only? [{shown}]: "
            )
            .strip()
            .lower()
        )
        if not answer:
            return DEFAULT_LISTEN if default else None
        if answer in ("y", "yes", "n", "no"):
            return DEFAULT_LISTEN if answer.startswith("y") else None
    raise CvsyncdError(f"no usable answer after {MAX_TRIES} tries: answer y or n")


def write_starter(
    path: str | os.PathLike[str], text: str, env: Mapping[str, str] | None = None
) -> None:
    """Check ``text`` with the config parser (as if it were at ``path``, with ``env`` for
    defaults), then create the file at ``path``, mode 0600, and its folder if missing.

    Raise ConfigError if the text is not a valid config, CvsyncdError if ``path`` exists
    (it is never overwritten) or cannot be written.
    """
    target = Path(os.fspath(path))
    parse_config(tomllib.loads(text), target, env)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise CvsyncdError(
            f"{target} already exists; cvsyncd init never overwrites a config file "
            "(move it aside, or give another path)"
        ) from None
    except OSError as error:
        raise CvsyncdError(f"cannot create {target}: {error.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as error:
        target.unlink(missing_ok=True)  # no half-written config left to trip over
        raise CvsyncdError(f"cannot write {target}: {error.strerror}") from None


# -- the questions --------------------------------------------------------------------------


def ask(
    prompt_fn: Callable[[str], str], defaults: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Ask for the inbox, the outbox, a starter preset and what to do after, through
    ``prompt_fn`` (called with the question, returning the answer; an empty answer takes the
    default shown). ``defaults`` may give ``inbox``, ``outbox``, ``preset``, ``after``.

    Return the keyword arguments of :func:`starter_config` but ``api_key_file``. A wrong
    answer asks again, saying why; raise CvsyncdError after MAX_TRIES wrong answers.
    """
    given = {**DEFAULTS, **(defaults or {})}
    inbox = question(
        prompt_fn, "Inbox folder, where recordings are dropped", given["inbox"], check_path
    )
    outbox = question(
        prompt_fn,
        "Outbox folder, where the cleaned results appear",
        given.get("outbox") or default_outbox(inbox),
        lambda answer: check_path(answer) or check_apart(inbox, answer),
    )
    menu = "".join(
        f"\n  {number}) {starter.name}: {starter.description}"
        for number, starter in enumerate(STARTERS.values(), start=1)
    )
    preset = question(
        prompt_fn,
        f"Which Cleanvoice preset?{menu}\nPreset (name or number)",
        given["preset"],
        check_preset,
        pick_preset,
    )
    choices = "".join(f"\n  {choice}: {what}" for choice, what in AFTER_CHOICES.items())
    after = question(
        prompt_fn,
        f"After cleaning, what happens to the recording?{choices}\nAfter",
        given["after"],
        check_after,
        str.lower,
    )
    return {
        "inbox": inbox,
        "outbox": outbox,
        "preset_name": preset,
        "preset_options": dict(STARTERS[preset].options),
        "after": after,
    }


def question(
    prompt_fn: Callable[[str], str],
    text: str,
    default: str,
    check: Callable[[str], str | None],
    convert: Callable[[str], str] = str,
) -> str:
    """Ask ``text`` until ``check`` (returning a complaint, or None) accepts the answer."""
    complaint = ""
    for _ in range(MAX_TRIES):
        answer = prompt_fn(f"{complaint}{text} [{default}]: ").strip() or default
        answer = convert(answer)
        problem = check(answer)
        if problem is None:
            return answer
        complaint = f"{problem}\n"
    raise CvsyncdError(f"no usable answer after {MAX_TRIES} tries: {complaint.strip()}")


def default_outbox(inbox: str) -> str:
    """``…/inbox`` → ``…/outbox``; any other name gets a ``-cleaned`` sibling."""
    path = Path(inbox)
    if path.name == "inbox":
        return str(path.parent / "outbox")
    return str(path.parent / f"{path.name}-cleaned")


def check_path(answer: str) -> str | None:
    if "\0" in answer:
        return "A path cannot contain a NUL character."
    return None


def check_apart(inbox: str, outbox: str) -> str | None:
    """Complain if the outbox is the inbox or inside it (results would be taken again)."""
    a, b = (Path(os.path.normpath(os.path.expanduser(p))) for p in (inbox, outbox))
    if a == b:
        return "The outbox must not be the inbox itself."
    if b.is_relative_to(a):
        return "The outbox must not lie inside the inbox: results would be taken as new recordings."
    if a.is_relative_to(b):
        return "The inbox must not lie inside the outbox."
    return None


def pick_preset(answer: str) -> str:
    """Return the starter named by ``answer``: its number in the menu or its name."""
    names = list(STARTERS)
    if answer.isdigit() and 1 <= int(answer) <= len(names):
        return names[int(answer) - 1]
    return answer.lower()


def check_preset(answer: str) -> str | None:
    if answer in STARTERS:
        return None
    return f"{answer!r} is not one of the presets: " + ", ".join(STARTERS) + "."


def check_after(answer: str) -> str | None:
    if answer in AFTER_CHOICES:
        return None
    return f"{answer!r} is not one of: " + ", ".join(AFTER_CHOICES) + "."

"""The ``[[folders]]`` of a config: their keys, their values, and the rules between them.

Each folder is read with the schema of ``FOLDER_KEYS``; its ``preset`` is resolved in the
file's :class:`~cvsyncd.config.presets.PresetBook`. Places are compared as written (the
inbox apart from the outbox, done and failed apart from both, inboxes apart from each
other); ``cvsyncd.inbox.places`` compares them again on disk, where links and mounts are
seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cvsyncd.config import presets
from cvsyncd.config.model import (
    DEFAULT_EXTENSIONS,
    EMBED_PARTS,
    TRANSCRIPT_FORMATS,
    VIDEO_UPLOADS,
    Folder,
)
from cvsyncd.config.presets import PresetBook
from cvsyncd.config.schema import (
    Invalid,
    Reader,
    Setting,
    boolean,
    choice,
    describe,
    file_mode,
    hours,
    number,
    optional_text,
    path,
    read_table,
    show_value,
    strings,
    suggest,
    text,
)
from cvsyncd.urls import is_loopback


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
    "embed": strings(
        EMBED_PARTS,
        allowed=EMBED_PARTS,
        valid='what goes into the cleaned MP3/M4A: "chapters", "tags", "cover" ([] for nothing)',
    ),
    "show": text(None),
    "cover": path(None, 'a JPEG or PNG image, e.g. cover = "/srv/podcast/cover.jpg"'),
    "video_upload": choice("auto", *VIDEO_UPLOADS),
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
    # the spend guard (see [budget])
    "existing": choice("auto", "auto", "take", "hold", "skip"),
    "hours_per_month": hours(None),
}


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
    options = values.get("options")
    if options is not None:
        wanted = options.get(presets.VIDEO_UPLOAD_KEY, values.get("video_upload"))
        cuts = presets.timing_changes(options)
        if wanted == "audio" and cuts:
            reader.report(
                f"{where}.video_upload",
                '"audio" sends a video\'s sound alone, which needs an edit that keeps the '
                "timing, but the preset does not: " + "; ".join(cuts),
                'muted = true in the preset, or video_upload = "auto" (sends such videos whole)',
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

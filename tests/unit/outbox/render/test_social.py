"""``<stem>.social.md`` from every shape ``social_content`` comes in: the docs' list, the
SDKs' object with its three known keys or with more, objects inside a list."""

from __future__ import annotations

from typing import Any

import pytest

from cvsyncd.outbox.render import RenderContext, derived_suffixes, render
from cvsyncd.outbox.render.summary import social_sections

CONTEXT = RenderContext("ep1", "ep1.wav")


def social(value: Any) -> dict[str, Any]:
    return {"social_content": value}


def test_the_three_known_posts_come_in_a_fixed_order() -> None:
    result = social({"linkedin": "In", "twitter_thread": "1/ a\n2/ b", "newsletter": "News"})
    assert social_sections(result) == [
        ("Newsletter", "News"),
        ("Twitter/X thread", "1/ a\n2/ b"),
        ("LinkedIn post", "In"),
    ]


def test_unknown_keys_are_kept_under_their_own_heading() -> None:
    result = social({"newsletter": "News", "instagram_caption": "Look", "tiktok": ["a", "b"]})
    assert social_sections(result) == [
        ("Newsletter", "News"),
        ("Instagram caption", "Look"),
        ("Tiktok", "a\n\nb"),
    ]


def test_a_list_of_texts_is_numbered() -> None:
    assert social_sections(social(["First post", "  ", "Second post"])) == [
        ("Post 1", "First post"),
        ("Post 3", "Second post"),
    ]


def test_a_list_of_objects_is_named_by_platform_or_title() -> None:
    result = social(
        [
            {"platform": "linkedin", "content": "In"},
            {"title": "Show notes", "text": "Notes"},
            {"newsletter": "News", "linkedin": "More"},  # an object of posts
            {"platform": "empty", "content": ""},
        ]
    )
    assert social_sections(result) == [
        ("Linkedin", "In"),
        ("Show notes", "Notes"),
        ("Post 3: Newsletter", "News"),
        ("Post 3: Linkedin", "More"),
    ]


@pytest.mark.parametrize("empty", [[], None, {}, "", {"newsletter": ""}, [""], [{}]])
def test_nothing_to_say_makes_no_file(empty: Any) -> None:
    result = {**social(empty), "transcription": []}
    assert ".social.md" not in derived_suffixes(result, [], [])
    with pytest.raises(ValueError, match="no social posts"):
        render(".social.md", result, CONTEXT)


def test_the_file_holds_every_post_of_a_list() -> None:
    result = social(["Emulated newsletter", {"platform": "mastodon", "content": "Toot"}])
    assert ".social.md" in derived_suffixes(result, [], [])
    text = render(".social.md", result, CONTEXT).decode()
    assert text == (
        "# Social posts: ep1.wav\n\n## Post 1\n\nEmulated newsletter\n\n## Mastodon\n\nToot\n"
    )
    assert "{" not in text and "'" not in text  # never a Python repr


def test_control_characters_and_windows_line_ends_are_tidied() -> None:
    [(_, text)] = social_sections(social({"newsletter": "a\r\nb\x00c\x07"}))
    assert text == "a\nbc"

"""exporter.redaction: Secret never prints itself, Redactor scrubs known keys out of text.

Each test builds its own Redactor, so nothing here touches the process-wide REDACTOR
that the config loader and the log pipeline share.
"""

from __future__ import annotations

import pytest

from exporter.redaction import Redactor, Secret

KEY = "sk_live_4f2a9c7e1b"


# --- Secret ---------------------------------------------------------------------------


def test_secret_str_and_repr_never_show_the_value() -> None:
    secret = Secret(KEY)
    assert str(secret) == "<redacted>"
    assert repr(secret) == "Secret('<redacted>')"
    # Every ordinary road to a string goes through __str__ or __repr__.
    assert f"{secret}" == "<redacted>"
    assert f"{secret!r}" == "Secret('<redacted>')"
    assert "%s / %r" % (secret, secret) == "<redacted> / Secret('<redacted>')"  # noqa: UP031
    assert "{}".format(secret) == "<redacted>"  # noqa: UP032


def test_secret_inside_containers_and_exception_text_stays_redacted() -> None:
    # A config object dumped whole (repr of a dict or list) or an error message
    # built around the key must not carry the value along.
    secret = Secret(KEY)
    assert repr({"api_key": secret}) == "{'api_key': Secret('<redacted>')}"
    assert repr([secret, secret]) == "[Secret('<redacted>'), Secret('<redacted>')]"
    assert str(ValueError(f"vendor rejected {secret}")) == "vendor rejected <redacted>"


def test_secret_reveal_returns_the_value_verbatim() -> None:
    assert Secret(KEY).reveal() == KEY
    assert Secret("").reveal() == ""


def test_secrets_compare_and_hash_by_value() -> None:
    # Equal keys are equal secrets, so a reload can tell an unchanged account.
    assert Secret(KEY) == Secret(KEY)
    assert Secret(KEY) != Secret(KEY + "x")
    assert hash(Secret(KEY)) == hash(Secret(KEY))
    assert len({Secret(KEY), Secret(KEY), Secret("other_key_123")}) == 2


def test_secret_never_equals_the_plain_string_it_wraps() -> None:
    # Comparing against a raw str is a type mix-up, not a match, from either side
    # (str.__eq__ defers to Secret.__eq__ on the reflected comparison).
    assert Secret(KEY) != KEY
    assert KEY != Secret(KEY)  # noqa: SIM300


@pytest.mark.parametrize(("value", "truthy"), [("", False), ("x", True), (KEY, True)])
def test_secret_truthiness_follows_the_value(value: str, truthy: bool) -> None:
    assert bool(Secret(value)) is truthy


def test_secret_has_no_instance_dict_to_dump() -> None:
    # __slots__: vars() or a naive serialiser walking __dict__ finds nothing.
    secret = Secret(KEY)
    assert not hasattr(secret, "__dict__")
    with pytest.raises(TypeError):
        vars(secret)


# --- Redactor ---------------------------------------------------------------------------


def test_scrub_with_nothing_registered_returns_text_unchanged() -> None:
    text = f"401: bad key {KEY}"
    assert Redactor().scrub(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (KEY, "<redacted>"),
        (f"401: bad key {KEY}!", "401: bad key <redacted>!"),
        (f'{{"message": "invalid key {KEY}"}}', '{"message": "invalid key <redacted>"}'),
        (f"<html>key={KEY} failed</html>", "<html>key=<redacted> failed</html>"),
        (f"Authorization: Bearer {KEY}", "Authorization: Bearer <redacted>"),
        # Back to back is one run of key characters: one marker.
        (f"{KEY}{KEY} and again {KEY}", "<redacted> and again <redacted>"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_scrub_replaces_every_occurrence_of_a_registered_key(text: str, expected: str) -> None:
    redactor = Redactor()
    redactor.register(KEY)
    assert redactor.scrub(text) == expected


def test_scrub_leaves_seven_characters_of_a_key_alone_and_takes_eight() -> None:
    # The rule: 8 characters of a key are a fragment worth hiding, 7 identify nothing.
    redactor = Redactor()
    redactor.register(KEY)
    assert redactor.scrub("keys start with sk_live") == "keys start with sk_live"
    assert redactor.scrub("keys start with sk_live_") == "keys start with <redacted>"


@pytest.mark.parametrize("short", ["", "a", "abcd", "abcde"])
def test_values_shorter_than_six_characters_are_not_registered(short: str) -> None:
    # Scrubbing "abc" (or "", which matches everywhere) would mangle ordinary text.
    redactor = Redactor()
    redactor.register(short)
    text = "abcdef abcde abcd a"
    assert redactor.scrub(text) == text


def test_a_six_character_value_is_the_shortest_that_is_scrubbed() -> None:
    redactor = Redactor()
    redactor.register("abcdef")
    assert redactor.scrub("x abcdef y abcde") == "x <redacted> y abcde"


def test_register_keeps_long_values_of_a_batch_that_also_has_short_ones() -> None:
    redactor = Redactor()
    redactor.register("abc", KEY, "")
    assert redactor.scrub(f"abc {KEY}") == "abc <redacted>"


def test_registrations_accumulate_across_calls() -> None:
    # A config reload registers the new keys; the old ones keep being scrubbed.
    redactor = Redactor()
    redactor.register(KEY)
    redactor.register("vx_live_second_key")
    redactor.register(KEY)  # registering twice is harmless
    assert redactor.scrub(f"{KEY} vx_live_second_key") == "<redacted> <redacted>"


def test_a_key_that_contains_another_key_is_removed_whole() -> None:
    # Shortest first would leave "sk_live_" + "<redacted>" behind, a visible prefix.
    redactor = Redactor()
    redactor.register("4f2a9c7e1b", KEY)
    assert redactor.scrub(f"{KEY} and 4f2a9c7e1b") == "<redacted> and <redacted>"


def test_keys_are_matched_literally_not_as_patterns() -> None:
    # Keys may hold regex metacharacters; "." must not match any character.
    redactor = Redactor()
    redactor.register("ab.d+f")
    assert redactor.scrub("abXd+f abXddf ab.d+f") == "abXd+f abXddf <redacted>"


def test_redactors_do_not_share_keys() -> None:
    first, second = Redactor(), Redactor()
    first.register(KEY)
    assert second.scrub(KEY) == KEY

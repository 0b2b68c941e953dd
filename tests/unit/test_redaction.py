"""exporter.redaction: Secret never prints itself, Redactor scrubs known keys out of text.

Each test builds its own Redactor, so nothing here touches the process-wide REDACTOR
that the config loader and the log pipeline share.
"""

from __future__ import annotations

import base64
import html
import json
import random
import string
import uuid
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exporter.redaction import REDACTED, WINDOW, Redactor, Secret
from tests.support.examples import examples

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


# --- the rule: no 8-character fragment of a key, in any encoding ------------------------
#
# The oracle below is deliberately naive and independent of the scrubber's views: it
# encodes the key the way a vendor would and looks for any 8 characters of that
# encoding in the output (whitespace dropped, case folded, as the rule says).


def _b64(key: str, alignment: int, urlsafe: bool) -> str:
    raw = key.encode()[alignment:]
    encoded = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    return encoded.decode()


def _json_slash(key: str) -> str:
    return json.dumps(key)[1:-1].replace("/", "\\/")


def _json_all_u(key: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in key)


# name -> how a vendor might echo the key.
ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda k: k,
    "upper": str.upper,
    "lower": str.lower,
    "swapcase": str.swapcase,
    "quote": lambda k: quote(k),
    "quote-all": lambda k: quote(k, safe=""),
    "quote_plus": quote_plus,
    "base64": lambda k: _b64(k, 0, urlsafe=False),
    "base64-nopad": lambda k: _b64(k, 0, urlsafe=False).rstrip("="),
    "base64-urlsafe": lambda k: _b64(k, 0, urlsafe=True),
    "base64-urlsafe-nopad": lambda k: _b64(k, 0, urlsafe=True).rstrip("="),
    # A Basic header echo: the key starts at byte 5, 6 and 7 of the blob.
    "basic-1": lambda k: "Basic " + base64.b64encode(b"user:" + k.encode()).decode(),
    "basic-2": lambda k: "Basic " + base64.b64encode(b"users:" + k.encode()).decode(),
    "basic-3": lambda k: "Basic " + base64.urlsafe_b64encode(b"user_x:" + k.encode()).decode(),
    "json": lambda k: json.dumps(k)[1:-1],
    "json-slash": _json_slash,
    "json-all-u": _json_all_u,
    "json-in-json": lambda k: json.dumps(json.dumps(k)[1:-1])[1:-1],
    "html": lambda k: html.escape(k),
    "html-all": lambda k: "".join(f"&#{ord(c)};" for c in k),
    "quote-in-json": lambda k: _json_slash(quote(k)),
    "hex": lambda k: k.encode().hex(),
    "hex-upper": lambda k: k.encode().hex().upper(),
    "repr": lambda k: repr(k)[1:-1],
}


def _folded(text: str) -> str:
    return "".join(text.split()).casefold()


def _oracle_fragments(key: str) -> set[str]:
    """Every 8 characters of every encoding of `key` that comes from key bytes alone."""
    forms = {key}
    for name, encode in ENCODINGS.items():
        if not name.startswith("basic"):
            forms.add(encode(key))
    for alignment in range(3):
        forms.add(_b64(key, alignment, urlsafe=False))
        forms.add(_b64(key, alignment, urlsafe=True))
    fragments: set[str] = set()
    for form in forms:
        folded = _folded(form.rstrip("="))
        if len(folded) < WINDOW:
            fragments.add(folded)
        fragments.update(folded[i : i + WINDOW] for i in range(len(folded) - WINDOW + 1))
    return fragments


def assert_no_fragment(key: str, output: str, where: str = "the output") -> None:
    # Our marker is no leak, even of a key that spells it ("<REDACTE" came up).
    shown = _folded(output.replace(REDACTED, "\0"))
    leaked = sorted(f for f in _oracle_fragments(key) if f in shown)
    assert not leaked, f"fragments {leaked} of the key are still in {where}: {output[:2000]!r}"


KEYS = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=64).filter(
    # Config strips keys; whitespace inside one counts for nothing, so 8 others.
    lambda k: len("".join(k.split())) >= WINDOW and k == k.strip()
)
# Around the key: ordinary log text, never letters or digits that could extend it.
SURROUNDINGS = st.sampled_from(["", " ", "401: bad key ", '{"error": "', "\n", "key=", "..."])
# The machine is shared and noisy: no deadline, and no health check on slow generation.
FAST = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@FAST
@given(key=KEYS, encoding=st.sampled_from(sorted(ENCODINGS)), before=SURROUNDINGS)
def test_no_fragment_of_an_encoded_key_survives(key: str, encoding: str, before: str) -> None:
    redactor = Redactor()
    redactor.register(key)
    text = f"{before}{ENCODINGS[encoding](key)} (request id 7)"
    assert_no_fragment(key, redactor.scrub(text))


@FAST
@given(
    key=KEYS,
    encoding=st.sampled_from(sorted(n for n in ENCODINGS if not n.startswith("basic"))),
    data=st.data(),
)
def test_no_fragment_of_a_cut_piece_of_an_encoded_key_survives(
    key: str, encoding: str, data: st.DataObject
) -> None:
    # A vendor (or our own cut to length) shows only part of the key.
    begin = data.draw(st.integers(0, len(key) - WINDOW), label="begin")
    end = data.draw(st.integers(begin + WINDOW, len(key)), label="end")
    piece = key[begin:end]
    assume(len(_folded(piece)) >= WINDOW)  # spaces inside count for nothing
    redactor = Redactor()
    redactor.register(key)
    shown = redactor.scrub(f"echo: {ENCODINGS[encoding](piece)}")
    if encoding.startswith("base64"):
        # Only whole 3-byte groups of a piece encode as they do inside the whole key.
        whole = piece.encode()[: len(piece.encode()) // 3 * 3].decode(errors="ignore")
        assert whole == "" or not any(
            f in _folded(shown) for f in _oracle_fragments(whole) if f in _oracle_fragments(key)
        )
    else:
        assert_no_fragment(piece, shown)


@FAST
@given(
    key=KEYS,
    encoding=st.sampled_from(["raw", "upper", "quote-all", "base64", "json-slash", "hex"]),
    cuts=st.lists(st.integers(1, 200), min_size=1, max_size=4),
    gap=st.sampled_from(["\n", " ", "\t", "\r\n  ", "\u200b"]),
)
def test_no_fragment_of_a_key_split_by_whitespace_survives(
    key: str, encoding: str, cuts: list[int], gap: str
) -> None:
    encoded = ENCODINGS[encoding](key)
    positions = sorted({c % len(encoded) for c in cuts} - {0})
    pieces = [encoded[i:j] for i, j in zip([0, *positions], [*positions, None], strict=True)]
    redactor = Redactor()
    redactor.register(key)
    shown = redactor.scrub("echo: " + gap.join(pieces))
    assert_no_fragment(key, shown.replace("\u200b", ""))


def test_a_key_cut_to_its_first_16_characters_by_a_200_character_cut_is_scrubbed() -> None:
    # Wherever vendor text is cut to 200 characters before it is scrubbed, 16
    # characters of the key survive the cut, and 16 >= 8 are still a fragment.
    key = "sk_live_Zq8tHk2Pw9Lm4Rx7Vb1"
    redactor = Redactor()
    redactor.register(key)
    cut = ("x" * 183 + " " + key)[:200] + "..."
    assert cut.endswith(key[:16] + "...")
    assert redactor.scrub(cut) == "x" * 183 + " <redacted>..."
    assert_no_fragment(key, redactor.scrub(("y" * 183 + " " + key.upper())[:200]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Offsets map back through escapes and whitespace: only the key goes.
        (
            '{"msg": "bad key sk_live\\u005f4f2a\\u0039c7e1b", "code": 7}',
            '{"msg": "bad key <redacted>", "code": 7}',
        ),
        ("Straße: SK_LIVE_4F2A9C7E1B, ok", "Straße: <redacted>, ok"),
        ("ﬁx sk_live_4f2a\n    9c7e1b ok", "ﬁx <redacted> ok"),
        ("a=sk_live_4f2a9c%37e1b&b=2", "a=<redacted>&b=2"),
    ],
)
def test_only_the_key_is_redacted_the_text_around_it_stays(text: str, expected: str) -> None:
    redactor = Redactor()
    redactor.register(KEY)
    assert redactor.scrub(text) == expected


def test_a_key_with_a_slash_and_a_plus_in_a_form_body_and_a_php_json_echo() -> None:
    key = "ab/cd+ef=gh/ij+kl"
    redactor = Redactor()
    redactor.register(key)
    for text in (quote_plus(key), quote(key), key.replace("/", "\\/"), html.escape(key)):
        assert redactor.scrub(f"key={text};") == "key=<redacted>;"


# --- no false positives -----------------------------------------------------------------

# Ordinary lines: what the exporter logs and shows when no key is involved.
ORDINARY = [
    '{"account": "prod-eu", "event": "poll failed", "level": "warning", "provider": "vertaaux",'
    ' "reason": "auth", "status": 401, "timestamp": "2026-01-02T03:04:05.123456Z"}',
    "poll succeeded duration_seconds=0.153 meters=3 provider=pictory account=marketing",
    "HTTP 429: rate_limit_exceeded; retry after 60 seconds",
    "HTTP 500: <html><head><title>502 Bad Gateway</title></head><body>nginx/1.25.3</body></html>",
    "response body is not JSON: 'Service Temporarily Unavailable'",
    "GET https://api.vertaaux.ai/v1/quota?include=plan&format=json%20full HTTP/1.1",
    'saas_quota_used{provider="piloterr",account="scraping",meter="api_credits"} 1234.0',
    'Traceback (most recent call last):\n  File "/usr/lib/python3.12/asyncio/tasks.py", line 314',
    "httpx.ConnectError: [Errno 111] Connection refused",
    "config reload failed; keeping the running config",
    '{"error": {"code": "invalid_api_key", "message": "The API key provided is invalid."}}',
    "Authorization header missing or malformed; see https://docs.pictory.ai/reference/auth",
    "request id 3f2c9a1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f took 1.25 s",
    "\\u00e9t\\u00e9 2026: quota reset on 2026-02-01T00:00:00+00:00 (every 30 days)",
    "base64 of nothing: dGhpcyBpcyBub3QgYSBrZXk= and sha256 e3b0c44298fc1c149afbf4c8996fb924",
]


def _realistic_keys(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    alnum = string.ascii_letters + string.digits
    shapes: list[Callable[[], str]] = [
        lambda: "sk_live_" + "".join(rng.choices(alnum, k=32)),
        lambda: "".join(rng.choices("0123456789abcdef", k=32)),
        lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        lambda: base64.b64encode(rng.randbytes(30)).decode(),
        lambda: "vx_" + "".join(rng.choices(alnum + "-_", k=24)),
    ]
    return [shapes[i % len(shapes)]() for i in range(count)]


def test_ordinary_lines_are_unchanged_with_many_keys_registered() -> None:
    redactor = Redactor()
    redactor.register(*_realistic_keys(seed=8, count=500))
    for line in ORDINARY:
        assert redactor.scrub(line) == line


@FAST
@given(
    key=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=16, max_size=64
    ).filter(lambda k: len(set(k)) >= 12)
)
def test_random_keys_leave_ordinary_lines_unchanged(key: str) -> None:
    # A key with some variety to it: "aaaaaaaa" is 8 characters of any "aaaaaaaaa".
    redactor = Redactor()
    redactor.register(key)
    for line in ORDINARY:
        if not any(f in _folded(line) for f in _oracle_fragments(key)):
            assert redactor.scrub(line) == line


def test_register_indexes_a_key_once() -> None:
    redactor = Redactor()
    redactor.register(KEY)
    index = redactor._index
    redactor.register(KEY, KEY)
    # A reload registers the same keys again: nothing to do, nothing rebuilt.
    assert redactor._index is index


@given(
    st.lists(st.text(min_size=8, max_size=8), max_size=200),
    st.lists(st.text(min_size=8, max_size=8), max_size=200),
    st.lists(st.text(min_size=8, max_size=8), max_size=50),
)
def test_the_window_table_holds_exactly_what_was_added_and_never_changes(
    first: list[str], second: list[str], others: list[str]
) -> None:
    from exporter.redaction import WindowTable

    one = WindowTable().with_added(iter(first), len(first))
    two = one.with_added(iter(second), len(second))  # grows past its first size
    assert all(w in one for w in first)
    assert all(w in two for w in first + second)
    assert len(two) == len(set(first + second))
    # Published tables are read without a lock: adding made a new one.
    assert len(one) == len(set(first))
    assert not any(w in one for w in second if w not in first)
    assert not any(w in two for w in others if w not in first + second)


def test_ten_thousand_random_keys_cost_tens_of_megabytes_not_hundreds() -> None:
    import random

    from exporter.redaction import Redactor, WindowTable

    rng = random.Random(11)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    keys = ["".join(rng.choices(alphabet, k=32)) for _ in range(10_000)]
    redactor = Redactor()
    redactor.register(*keys)
    table = dict(redactor._index.tables)[8]
    assert isinstance(table, WindowTable)
    # Every window of every form of every key; 8 bytes a slot (a frozenset of the
    # same windows was ~90 bytes an entry).
    assert len(table) > 1_500_000
    assert table._slots.itemsize * len(table._slots) <= 40 * 2**20
    assert redactor.scrub(f"echo {keys[1234][5:17]} back") == "echo <redacted> back"

"""Keeping API keys out of logs, errors, pages and metrics.

Keys travel as `Secret`, whose str() and repr() never show the value, and every key
the config loads is registered here, so that the roads out of the process that carry
vendor text (the log pipeline, the landing page `/`, label values on `/metrics`) scrub
it from whatever slipped through: a vendor echoing the key back in an error body, say,
in whatever form the vendor chose. Config errors (`--config.check`, the `POST
/-/reload` answer, the reload log line) never quote a key; what they decline to quote
(the inside of a bad `${...}` in `api_key`) is registered here too.

The rule
--------
No text we show contains an 8-character (`WINDOW`) or longer fragment of a registered
key in any of these forms, nor a whole registered key of 6 or 7 characters:

* raw, in any letter case (matching is case-insensitive, Unicode case folding);
* with whitespace or invisible separators (zero-width space, soft hyphen, BOM)
  inserted anywhere: a key split over two lines is still one key;
* escaped, with any mix of escaped and plain characters: JSON and Python string
  escapes (`\\/`, `\\"`, `\\n`, `\\uXXXX` with surrogate pairs, `\\xXX`), HTML
  character references (`&#47;`, `&#x2F;`, `&sol;`), percent-encoding (`%2F`, and `+`
  for a space as in a form body), escapes two levels deep (a JSON error quoted in
  another JSON document), and percent-encoding inside escapes;
* base64, standard and URL-safe alphabets, with or without padding, at each of the
  3 byte alignments, so a key inside a longer blob (`Basic base64(user:key)`) or
  wrapped over several lines is still found;
* hex of its UTF-8 bytes, either case.

So a key cut by a length limit is still scrubbed while 8 of its characters remain;
fewer than 8 characters of a key identify nothing. Values shorter than 6 characters
are never registered (scrubbing "abc" would mangle ordinary text). The price of the
rule: any 8 characters of a key are scrubbed wherever they appear, so a key with a
common prefix ("sk_live_") also takes that prefix out of ordinary text, and a key
made of words takes those words out (the log leaves its `provider` and `account`
fields alone, config identifiers shown as they are on `/` and /metrics too).

The mechanism
-------------
`register()` derives the fixed encodings of each key (raw, base64 at 3 alignments in
both alphabets, hex), folds them (whitespace removed, case folded) and indexes every
8-character window of each in one table of their hashes (`WindowTable`); a form of 6
or 7 characters is indexed whole.
`scrub()` builds a few views of the text: as it is, with escapes decoded, and with
percent-encoding decoded on top of that (a view is built only when the text has the
characters that view decodes). Each view drops whitespace and folds case, and keeps
a map from its offsets back to the original text. Every window of every view is
looked up in the set; each hit marks the original span it came from, and every
maximal run of marked spans becomes one `<redacted>`. The cost is linear in the
length of the text and independent of the number of keys (a lookup per offset).
Escapes are decoded in the text rather than encoded in the key because an encoder
chooses which characters to escape; base64 and hex are deterministic, so the key
side carries them.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import threading
from array import array
from bisect import bisect_right
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Final, cast

REDACTED: Final = "<redacted>"
# Fragments of at least this many characters of a key are scrubbed.
WINDOW: Final = 8
# Short strings are no secret worth scrubbing and would mangle ordinary text.
_MIN_SECRET_LENGTH: Final = 6

# Dropped before matching: whitespace (a key wrapped or split over lines) and the
# invisible characters that split a key without showing.
_GAPS: Final = re.compile(r"[\s\u00ad\u200b-\u200d\u2060\ufeff]+")
_RUNS: Final = re.compile(r"[^\s\u00ad\u200b-\u200d\u2060\ufeff]+")
# JSON, Python-repr and HTML escapes. A surrogate pair first, so it decodes to the
# one character it encodes.
_ESCAPES: Final = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|\\u([0-9a-fA-F]{4})"
    r"|\\x([0-9a-fA-F]{2})"
    r"|\\([\"'\\/bfnrt])"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
)
_SIMPLE_ESCAPES: Final = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_ESCAPE_LEVELS: Final = 2
_PERCENT: Final = re.compile(r"%([0-9a-fA-F]{2})")
# Form encoding (quote_plus): `+` is a space, `%2B` a plus.
_PERCENT_PLUS: Final = re.compile(r"%([0-9a-fA-F]{2})|\+")


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


# --- views: a transformed text and the way back to the original offsets -----------------


@dataclass(frozen=True)
class _Map:
    """Offsets of one transformation's output back to its input.

    The output is a sequence of pieces: a plain piece is copied input (one output
    character per input character), a token piece is what one input token (an
    escape, a case-folded character) became; all its characters map to the token.
    """

    starts: tuple[int, ...]  # output offset where each piece starts
    pieces: tuple[tuple[int, int, bool], ...]  # (input start, input end, plain)

    def span(self, offset: int) -> tuple[int, int]:
        k = bisect_right(self.starts, offset) - 1
        start, end, plain = self.pieces[k]
        if plain:
            position = start + offset - self.starts[k]
            return position, position + 1
        return start, end


def _transform(
    text: str, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]
) -> tuple[str, _Map | None]:
    """`pattern.sub(replace, text)` with a map back; None when nothing matched."""
    out: list[str] = []
    starts: list[int] = []
    pieces: list[tuple[int, int, bool]] = []
    length = position = 0
    for match in pattern.finditer(text):
        begin, end = match.span()
        if begin > position:
            starts.append(length)
            pieces.append((position, begin, True))
            out.append(text[position:begin])
            length += begin - position
        replacement = replace(match)
        if replacement:
            starts.append(length)
            pieces.append((begin, end, False))
            out.append(replacement)
            length += len(replacement)
        position = end
    if position == 0 and not pieces:
        return text, None
    if position < len(text):
        starts.append(length)
        pieces.append((position, len(text), True))
        out.append(text[position:])
    return "".join(out), _Map(tuple(starts), tuple(pieces))


def _fold(text: str) -> tuple[str, _Map | None]:
    """Case-folded text; casefold is per character, so only its length can shift."""
    folded = text.casefold()
    if len(folded) == len(text):
        # No character folded to several ("ß" -> "ss"), so offsets are unchanged.
        return folded, None
    out: list[str] = []
    starts: list[int] = []
    pieces: list[tuple[int, int, bool]] = []
    length = 0
    for index, char in enumerate(text):
        piece = char.casefold()
        starts.append(length)
        pieces.append((index, index + 1, len(piece) == 1))
        out.append(piece)
        length += len(piece)
    return "".join(out), _Map(tuple(starts), tuple(pieces))


def _joined(text: str, maps: tuple[_Map, ...]) -> tuple[str, tuple[_Map, ...]]:
    """Whitespace and invisible separators dropped.

    The hot path (every log line has spaces), so done with C-level passes rather
    than `_transform`'s loop: the pieces are the runs between gaps, all plain.
    """
    runs = [match.span() for match in _RUNS.finditer(text)]
    if len(runs) == 1 and runs[0] == (0, len(text)):
        return text, maps
    joined = "".join([text[begin:end] for begin, end in runs])
    starts = tuple(accumulate([end - begin for begin, end in runs[:-1]], initial=0))
    pieces = tuple([(begin, end, True) for begin, end in runs])
    return joined, (*maps, _Map(starts, pieces)) if runs else maps


def _folded(text: str, maps: tuple[_Map, ...]) -> tuple[str, tuple[_Map, ...]]:
    folded, fold = _fold(text)
    return folded, maps if fold is None else (*maps, fold)


def _unescape(match: re.Match[str]) -> str:
    high, low, code, byte, simple = match.groups()
    if high is not None:
        pair = (int(high, 16) - 0xD800) * 0x400 + (int(low, 16) - 0xDC00) + 0x10000
        return chr(pair)
    if code is not None:
        return chr(int(code, 16))
    if byte is not None:
        return chr(int(byte, 16))
    if simple is not None:
        return _SIMPLE_ESCAPES[simple]
    return html.unescape(match.group(0))


def _unpercent(match: re.Match[str]) -> str:
    # One byte per escape, as Latin-1: a non-ASCII key is also indexed as its UTF-8
    # bytes read as Latin-1, so a percent-encoded UTF-8 key still matches.
    code = match.group(1)
    return " " if code is None else chr(int(code, 16))


def _views(text: str) -> Iterator[tuple[str, tuple[_Map, ...]]]:
    """The text as it is, with escapes decoded, and percent-decoded on top of that.

    Whitespace goes before decoding too, so an escape split by a line break (`%2`,
    newline, `F`) still decodes, and again after it (a `\\n` escape is whitespace).
    """
    text, maps = _joined(text, ())
    yield _folded(text, maps)
    # Two levels: a vendor's JSON error quoted inside another JSON or HTML document.
    for _level in range(_ESCAPE_LEVELS):
        if "\\" not in text and "&" not in text:
            break
        decoded, escapes = _transform(text, _ESCAPES, _unescape)
        if escapes is None:
            break
        text, maps = _joined(decoded, (*maps, escapes))
        yield _folded(text, maps)
    for pattern, trigger in ((_PERCENT, "%"), (_PERCENT_PLUS, "+")):
        if trigger in text:
            decoded, percent = _transform(text, pattern, _unpercent)
            if percent is not None:
                yield _folded(*_joined(decoded, (*maps, percent)))


def _original(maps: tuple[_Map, ...], begin: int, end: int) -> tuple[int, int]:
    """The span of the original text that view characters [begin, end) came from."""
    first, last = begin, end - 1
    for step in reversed(maps):
        first = step.span(first)[0]
        last = step.span(last)[1] - 1
    return first, last + 1


def _runs(hits: list[int], length: int) -> Iterator[tuple[int, int]]:
    """Sorted window offsets as maximal [begin, end) runs of overlapping windows."""
    if not hits:
        return
    begin = end = hits[0]
    for offset in hits[1:]:
        if offset > end:
            yield begin, end + length
            begin = offset
        end = offset
    yield begin, end + length


# --- the index of known keys ------------------------------------------------------------


def _normal(form: str) -> str:
    """A key's form as the views see text: no whitespace, case folded."""
    return "".join(_GAPS.split(form)).casefold()


def _forms(value: str) -> Iterator[str]:
    """The fixed encodings of a key; escapes are decoded on the text side instead."""
    yield value
    raw = value.encode("utf-8", errors="surrogatepass")
    if not value.isascii():
        yield raw.decode("latin-1")
    for alignment in range(3):
        part = raw[alignment:]
        # Padding stripped: a window before it still matches, with or without it.
        yield base64.b64encode(part).decode("ascii").rstrip("=")
        yield base64.urlsafe_b64encode(part).decode("ascii").rstrip("=")
    yield binascii.hexlify(raw).decode("ascii")


class WindowTable(Container[str]):
    """A set of strings kept as their 64-bit hashes, in one open-addressed array.

    Why not a set of str: every 8-character window of every form of 10,000 random
    keys is ~1.9 million strings, 174 MB as a frozenset; here 8 bytes a slot at a
    load under 0.7, 34 MB. A window whose hash equals a registered one
    without being one would be scrubbed: with 64-bit hashes that is about one
    ordinary window in 10^13. Never changed once published: `with_added` copies.
    """

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self, size: int = 8) -> None:
        self._slots = array("q", bytes(8 * size))  # 0: empty
        self._mask = size - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, text: object) -> bool:
        h = hash(text) or 1
        slots, mask = self._slots, self._mask
        i = h & mask
        while True:
            seen = slots[i]
            if seen == h:
                return True
            if not seen:
                return False
            i = (i + 1) & mask

    def _add_hash(self, h: int) -> None:
        slots, mask = self._slots, self._mask
        i = h & mask
        while True:
            seen = slots[i]
            if seen == h:
                return
            if not seen:
                slots[i] = h
                self._count += 1
                return
            i = (i + 1) & mask

    def with_added(self, texts: Iterable[str], count: int) -> WindowTable:
        """A new table holding this one's strings and the `count` (at most) `texts`,
        taken one at a time: 10,000 keys' windows are never all held at once."""
        size = len(self._slots)
        # A load of at most 0.7 counting every window, duplicates too (~0.45 in fact).
        while 10 * (self._count + count) > 7 * size:
            size *= 2
        table = WindowTable.__new__(WindowTable)
        table._mask = size - 1
        if size == len(self._slots):
            table._slots = array("q", self._slots)
            table._count = self._count
        else:
            table._slots = array("q", bytes(8 * size))
            table._count = 0
            for h in self._slots:
                if h:
                    table._add_hash(h)
        for text in texts:
            table._add_hash(hash(text) or 1)
        return table


@dataclass(frozen=True)
class _Index:
    """Everything scrub() looks up, published as one value (no lock to read it)."""

    keys: frozenset[str] = frozenset()
    # (length, folded fragments of that length): WINDOW-long windows of every form,
    # and whole forms of 6 or 7 characters.
    tables: tuple[tuple[int, Container[str]], ...] = ()


class Redactor:
    """The set of known secrets, and scrubbing them out of text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index = _Index()

    def register(self, *values: str) -> None:
        with self._lock:
            index = self._index
            fresh = [
                v for v in values if v not in index.keys and len(_normal(v)) >= _MIN_SECRET_LENGTH
            ]
            if not fresh:
                return
            old = dict(index.tables)
            long: list[str] = []  # folded forms that have windows
            short: dict[int, set[str]] = {}
            for value in fresh:
                for form in _forms(value):
                    folded = _normal(form)
                    if len(folded) >= WINDOW:
                        long.append(folded)
                    elif len(folded) >= _MIN_SECRET_LENGTH:
                        short.setdefault(len(folded), set()).add(folded)
            tables: dict[int, Container[str]] = dict(old)
            if long:
                table = old.get(WINDOW)
                assert table is None or isinstance(table, WindowTable)
                tables[WINDOW] = (table or WindowTable()).with_added(
                    (f[i : i + WINDOW] for f in long for i in range(len(f) - WINDOW + 1)),
                    sum(len(f) - WINDOW + 1 for f in long),
                )
            for length, forms in short.items():
                tables[length] = frozenset(forms) | cast(
                    frozenset[str], old.get(length, frozenset())
                )
            self._index = _Index(
                keys=index.keys | frozenset(fresh), tables=tuple(sorted(tables.items()))
            )

    def scrub(self, text: str) -> str:
        tables = self._index.tables  # one consistent view, no lock on the hot path
        if not tables or len(text) < _MIN_SECRET_LENGTH:
            return text
        spans: list[tuple[int, int]] = []
        for view, maps in _views(text):
            for length, table in tables:
                hits = [i for i in range(len(view) - length + 1) if view[i : i + length] in table]
                # Overlapping windows in the view are one run: mapped back once, not
                # once per window (a 40-character key is 33 windows).
                for begin, end in _runs(hits, length):
                    spans.append(_original(maps, begin, end))
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        position = 0
        begin, end = spans[0]
        for next_begin, next_end in spans[1:]:
            if next_begin <= end:
                end = max(end, next_end)
                continue
            out += (text[position:begin], REDACTED)
            position = end
            begin, end = next_begin, next_end
        out += (text[position:begin], REDACTED, text[end:])
        return "".join(out)


# One process, one set of keys: the logging pipeline and the config loader share it.
REDACTOR: Final = Redactor()

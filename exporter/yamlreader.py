"""The one strict YAML reader: bounded file reads, a composer with limits, a node walk.

Shared by the config file (exporter/config.py), its `api_key_file`s and the web config
(exporter/webconfig/). Three layers:

- `read_limited`: a reload must end, whatever the files hold: a FIFO would block
  `open()` or `read()` forever, `/dev/zero` or a huge file would fill memory.
- `compose` / `LimitedLoader`: YAML nested thousands deep overflows the stack, and a
  handful of anchors and aliases ("billion laughs") expands into an exponential number
  of nodes for anything that walks or prints the tree.
- `Reader`: walks the node tree (nothing is constructed, so no tag can run code or
  fail half-way) with typed accessors that collect every problem instead of stopping,
  each as `file:line:col: path: message`, in document order. A value is never quoted
  by the accessors (it may be a key or a password hash); values registered in
  `Reader.secrets` are scrubbed from whatever a caller's own message quotes.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Collection
from typing import Any, Final, Literal

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.durations import format_duration, parse_duration
from exporter.redaction import REDACTED

# The exporter config: 10,000 accounts take about 1.4 MB (docs/deployment.md, More than
# one machine), so 16 MiB leaves room for ten times that; past it, a mistake.
MAX_CONFIG_BYTES: Final = 16 * 1024 * 1024
# A web config or one provider definition is a few KiB.
MAX_SMALL_CONFIG_BYTES: Final = 1024 * 1024
# An API key is well under 1 KiB; a key file bigger than this is not a key file.
MAX_KEY_FILE_BYTES: Final = 64 * 1024
# Deeper than any config or web config needs (they are 3-4 levels deep).
MAX_DEPTH: Final = 64
# Configs rarely use aliases at all; 100 allows shared blocks.
MAX_ALIASES: Final = 100
# The tree as anything walking it sees it, each alias counted as the nodes it stands
# for. 10,000 accounts of four keys are 90,000 nodes, so this allows a config of 200,000
# accounts; "billion laughs" (nine levels of nine aliases: 81 aliases, 9**9 nodes) is
# far over, and walking this many costs a few seconds at worst.
MAX_EXPANDED_NODES: Final = 2_000_000

# A Python repr PyYAML puts in its messages: one character, a token name, or a name.
_YAML_QUOTED = re.compile(r""" ?('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_YAML_ONE_CHAR = re.compile(r"""^(['"])(?:[^\\]|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\.)\1$""")

_KIND: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileReadError(Exception):
    """A file that cannot be used; the message says why, without any of its content."""


def _human(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size >= 1024 * 1024 else f"{size // 1024} KiB"


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or FileReadError.

    Opened with O_NONBLOCK so a FIFO cannot block the open, then checked with fstat
    (on the open descriptor, so a swap between check and read changes nothing) and
    read with a cap, so a file that grows while it is read cannot fill memory either.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileReadError(exc.strerror or str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KIND if test(info.st_mode)), "not a file")
            raise FileReadError(f"is {kind}, not a regular file")
        if info.st_size > limit:
            raise FileReadError(f"is {info.st_size} bytes; the limit is {_human(limit)}")
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(65536, limit + 1 - total))
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise FileReadError("would block; it is not a regular file") from None
                raise FileReadError(exc.strerror or str(exc)) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileReadError(f"is over the limit of {_human(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


class YAMLLimitError(yaml.MarkedYAMLError):
    """The document is nested too deep or uses too many aliases; `problem` says which."""


class LimitedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses deep nesting and alias bombs.

    Checked while composing, before any node tree walk or construction: the parser
    itself keeps its state on a list, so depth costs stack only from here on.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._expanded = 0
        # anchor -> how many nodes it stands for, aliases inside it expanded.
        self._sizes: dict[str, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YAMLLimitError(
                    None,
                    None,
                    f"more than {MAX_ALIASES} aliases (*name); write the values out",
                    event.start_mark,  # type: ignore[arg-type]
                )
            self._count(self._sizes.get(str(event.anchor), 1), event)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLLimitError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                )
            self._count(1, event)
            before = self._expanded - 1
            node = super().compose_node(parent, index)
            anchor = event.anchor if isinstance(event, NodeEvent) else None
            if anchor is not None:
                self._sizes[str(anchor)] = self._expanded - before
            return node
        finally:
            self._depth -= 1

    def _count(self, nodes: int, event: Any) -> None:
        self._expanded += nodes
        if self._expanded > MAX_EXPANDED_NODES:
            raise YAMLLimitError(
                None,
                None,
                f"aliases expand it to more than {MAX_EXPANDED_NODES} nodes",
                event.start_mark,
            )


def compose(text: str) -> Node | None:
    """The node tree of one YAML document, within the limits above."""
    loader = LimitedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _tab_hint(text: str, mark: Any) -> str:
    """The fix when a tab is what YAML stumbled on: at the error, or in that line's indent.

    PyYAML says "found character '\\t' that cannot start any token", which names the
    character but not that YAML forbids tabs in indentation (editors insert them).
    """
    if mark is None or not 0 <= mark.index <= len(text):
        return ""
    start = text.rfind("\n", 0, mark.index) + 1
    line = text[start : text.find("\n", start) if "\n" in text[start:] else len(text)]
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if text[mark.index : mark.index + 1] == "\t" or "\t" in indent:
        return "; use spaces, not tabs (YAML rejects a tab here; indentation must be spaces)"
    return ""


def yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's words without the anchor, alias and tag names it quotes (one may be a key).

    Kept: single characters ('\\t') and token names ('<block end>').
    """
    context, start, end = exc.context, exc.context_mark, exc.problem_mark
    if context and start and end and start.line != end.line:
        context += f" at line {start.line + 1}"
    text = ", ".join(part for part in (context, exc.problem) if part) or "invalid YAML"

    def keep(match: re.Match[str]) -> str:
        quoted = match.group(1)
        return match.group(0) if quoted[1] == "<" or _YAML_ONE_CHAR.match(quoted) else ""

    return _YAML_QUOTED.sub(keep, text)


# --- the node walk --------------------------------------------------------------------

_NULL_TAG: Final = "tag:yaml.org,2002:null"
_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_INT_TAG: Final = "tag:yaml.org,2002:int"
_FLOAT_TAG: Final = "tag:yaml.org,2002:float"
# Shorter values are no secret worth scrubbing and would mangle ordinary text.
_MIN_SECRET_LENGTH: Final = 4


# What a mistyped choice looks like (`TLS14`, `Always`): short and name-shaped. Anything
# else in a choice field (a bcrypt hash, a key pasted into the wrong line) is not shown.
_NAME_LIKE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")


def shown_choice(value: str) -> str:
    """A rejected choice as an error message may show it: quoted if name-shaped."""
    if _NAME_LIKE.fullmatch(value):
        return repr(value)
    return "value (not shown: it does not look like a name)"


def is_null(node: Node) -> bool:
    """`~`, `null` or nothing at all (`key:`)."""
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def kind(node: Node) -> str:
    """What a node is, for "expected X, got Y"; never the value itself (it may be a key)."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if is_null(node):
        return "nothing"
    name = node.tag.rsplit(":", 1)[-1]
    return {"str": "a string", "int": "a number", "float": "a number", "bool": "a boolean"}.get(
        name, "a scalar"
    )


class DocumentError(Exception):
    """The text is not one YAML document within the limits; nothing was walked.

    `where` is `file:line:col` (or the file alone), `message` PyYAML's words without
    anything they quote, `kind` whether a limit, the syntax or something else failed:
    each caller words it its own way ("YAML syntax error:", "invalid YAML:").
    """

    def __init__(self, where: str, message: str, kind: Literal["limit", "syntax", "error"]) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
        self.kind = kind


class Fields(dict[str, Node]):
    """A mapping's values by key, in document order; `key_node(k)` for a key's position."""

    def __init__(self) -> None:
        super().__init__()
        self._key_nodes: dict[str, Node] = {}

    def key_node(self, key: str) -> Node:
        return self._key_nodes[key]


class Reader:
    """One walk over one document, collecting every problem with its position.

    Accessors take the node (None when the key is absent) and `where`, the path
    printed with the problem (`tls_server_config.cert_file`, `accounts[2].interval`),
    and return the value or None after recording why not. Subclasses add what their
    format means (exporter/config.py expands `${VAR}` by overriding `expand`).
    """

    # The shortest duration `duration()` accepts unless told otherwise.
    min_duration: float = 0.0

    def __init__(self, source: str) -> None:
        self.source = source
        # (line, column, text): reported in document order, the order one fixes them in.
        self.problems: list[tuple[int, int, str]] = []
        self.warnings: list[str] = []
        # Values written in this document that no message may show (keys, passwords):
        # a value pasted into another field by mistake is quoted by that field's message
        # unless scrubbed here.
        self.secrets: set[str] = set()

    # --- reporting --------------------------------------------------------------------

    def position(self, node: Node | None) -> str:
        """`file:line:col: ` of a node (1-based), or `file: ` without one."""
        if node is None:
            return f"{self.source}: "
        mark = node.start_mark
        return f"{self.source}:{mark.line + 1}:{mark.column + 1}: "

    def problem(self, node: Node | None, where: str, message: str) -> None:
        line, column = (
            (node.start_mark.line, node.start_mark.column) if node is not None else (-1, -1)
        )
        text = f"{self.position(node)}{where + ': ' if where else ''}{message}"
        self.problems.append((line, column, text))

    def warning(self, node: Node | None, where: str, message: str) -> None:
        self.warnings.append(f"{self.position(node)}{where}: {message}")

    def secret(self, value: str) -> None:
        """Scrub `value` from every problem text (when long enough to be one)."""
        if len(value.strip()) >= _MIN_SECRET_LENGTH:
            self.secrets.add(value.strip())

    def texts(self) -> list[str]:
        """Every problem in document order, secrets scrubbed."""
        texts = [text for *_, text in sorted(self.problems, key=lambda p: p[:2])]
        # Longest first, so a secret that contains another is replaced whole.
        for secret in sorted(self.secrets, key=len, reverse=True):
            texts = [text.replace(secret, REDACTED) for text in texts]
        return texts

    # --- the document -----------------------------------------------------------------

    def compose(self, text: str) -> Node | None:
        """The node tree of `text`, or DocumentError; PyYAML's quotes never pass through."""
        try:
            return compose(text)
        except YAMLLimitError as exc:
            raise DocumentError(self._where(exc.problem_mark), str(exc.problem), "limit") from None
        except yaml.MarkedYAMLError as exc:
            # str(exc) would quote the offending line, which may hold a key.
            mark = exc.problem_mark or exc.context_mark
            message = yaml_message(exc) + _tab_hint(text, mark)
            raise DocumentError(self._where(mark), message, "syntax") from None
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            column = exc.position - text.rfind("\n", 0, exc.position)
            raise DocumentError(
                f"{self.source}:{line}:{column}",
                f"unacceptable character #x{exc.character:04x}: {exc.reason}",
                "syntax",
            ) from None
        except yaml.YAMLError as exc:
            raise DocumentError(self.source, type(exc).__name__, "error") from None

    def _where(self, mark: Any) -> str:
        return f"{self.source}:{mark.line + 1}:{mark.column + 1}" if mark else self.source

    # --- collections ------------------------------------------------------------------

    def mapping(
        self,
        node: Node,
        where: str,
        allowed: Collection[str] | None = None,
        *,
        handled: Collection[str] = (),
        what: str = "a mapping",
    ) -> Fields | None:
        """The values by key; duplicate keys, non-string keys and keys outside `allowed`
        (when given) are problems. Keys in `handled` are returned for the caller to judge
        (a key a format knows but rejects with its own words) and not listed as allowed."""
        if not isinstance(node, MappingNode):
            self.problem(node, where, f"expected {what}, got {kind(node)}")
            return None
        result = Fields()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            path = f"{where}.{key}" if where else str(key)
            if key is None:
                self.problem(key_node, where, "mapping keys must be plain strings")
            elif key in result:
                self.problem(key_node, path, "duplicate key")
            elif allowed is not None and key not in allowed and key not in handled:
                self.problem(
                    key_node, path, f"unknown key {key!r}; allowed keys: {', '.join(allowed)}"
                )
            else:
                result[key] = value_node
                result._key_nodes[key] = key_node
        return result

    def sequence(self, node: Node, where: str, *, what: str = "a list") -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.problem(node, where, f"expected {what}, got {kind(node)}")
            return None
        return list(node.value)

    # --- scalars ----------------------------------------------------------------------

    def string(
        self,
        node: Node | None,
        where: str,
        parent: Node | None,
        *,
        required: bool = False,
        secret: bool = False,
        what: str = "a string",
    ) -> str | None:
        """A scalar's text through `expand`; absent (None) is a problem at `parent` only
        when required, `key:` with nothing is always one."""
        if node is None:
            if required:
                self.problem(parent, where, "is required")
            return None
        if not isinstance(node, ScalarNode):
            self.problem(node, where, f"expected {what}, got {kind(node)}")
            return None
        if is_null(node):
            self.problem(node, where, "is empty")
            return None
        before = len(self.problems)
        value = self.expand(node, where, secret=secret)
        # A failed expansion is that one problem, not also "is empty" or a bad URL.
        return value if len(self.problems) == before else None

    def expand(self, node: ScalarNode, where: str, *, secret: bool) -> str:
        """The text of a scalar; a format with references in values overrides this."""
        return str(node.value)

    def choice(self, node: Node, where: str, choices: Collection[str]) -> str | None:
        """One of `choices`; another value is quoted only when it looks like a name."""
        value = self.string(node, where, None)
        if value is not None and value not in choices:
            self.problem(node, where, f"invalid {shown_choice(value)}; valid: {', '.join(choices)}")
            return None
        return value

    def boolean(self, node: Node, where: str) -> bool | None:
        """true/false (and YAML 1.1's yes/no/on/off, as Go's yaml.v2 reads them)."""
        if isinstance(node, ScalarNode) and node.tag == _BOOL_TAG:
            value = SafeConstructor.bool_values.get(str(node.value).lower())
            if value is not None:
                return bool(value)
        self.problem(node, where, f"expected true or false, got {kind(node)}")
        return None

    def number(self, node: Node, where: str) -> int | float | None:
        """An int or float as YAML resolves it (`10`, `0x1f`, `1.5`, `1e3`)."""
        if isinstance(node, ScalarNode) and node.tag in (_INT_TAG, _FLOAT_TAG):
            constructor = SafeConstructor()
            try:
                if node.tag == _INT_TAG:
                    return int(constructor.construct_yaml_int(node))
                return float(constructor.construct_yaml_float(node))
            except (ValueError, OverflowError):
                pass  # `!!int x`, or more digits than Python converts
        self.problem(node, where, f"expected a number, got {kind(node)}")
        return None

    def duration(self, node: Node | None, where: str, minimum: float | None = None) -> float | None:
        """`90s`, `5m`, `1h30m` (exporter/durations.py), at least `minimum` seconds."""
        least = self.min_duration if minimum is None else minimum
        text = self.string(node, where, None)
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            self.problem(node, where, str(exc))
            return None
        if seconds < least:
            self.problem(
                node, where, f"{text} is too short; the minimum is {format_duration(least)}"
            )
            return None
        return seconds

"""Bounded reading of the files a config load touches, and a YAML loader with limits.

Shared by the config file, its `api_key_file`s and the web config. A reload must end,
whatever the files hold: a FIFO would block `open()` or `read()` forever, `/dev/zero`
or a huge file would fill memory, YAML nested thousands deep overflows the stack, and
a handful of anchors and aliases ("billion laughs") expands into an exponential number
of nodes for anything that walks or prints the tree.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Any, Final

import yaml
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import Node

# A config with thousands of accounts is a few hundred KiB; anything bigger is a mistake.
MAX_CONFIG_BYTES: Final = 1024 * 1024
# An API key is well under 1 KiB; a key file bigger than this is not a key file.
MAX_KEY_FILE_BYTES: Final = 64 * 1024
# Deeper than any config or web config needs (they are 3-4 levels deep).
MAX_DEPTH: Final = 64
# Configs rarely use aliases at all; 100 allows shared blocks.
MAX_ALIASES: Final = 100
# The tree as anything walking it sees it, each alias counted as the nodes it stands
# for. A 1 MiB config of real accounts is well under this; "billion laughs" (nine
# levels of nine aliases: 81 aliases, 9**9 nodes) is far over.
MAX_EXPANDED_NODES: Final = 100_000

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

"""Declarative providers: a vendor defined in YAML instead of a Python module.

`schema` loads and checks a definition (every problem at once, with file:line:col),
`valuespec` reads figures and timestamps, `ratelimit` reads rate-limit headers and
`provider` turns a definition into the same `Provider` value the Python adapters are.
docs/writing-a-provider.md describes the format.
"""

from __future__ import annotations

from importlib import resources

from exporter.providers.base import Provider
from exporter.providers.declarative.provider import (
    DefinitionParser,
    Explanation,
    build_provider,
)
from exporter.providers.declarative.schema import (
    Definition,
    DefinitionError,
    load_node,
    load_text,
)
from exporter.yamlreader import MAX_SMALL_CONFIG_BYTES

__all__ = [
    "Definition",
    "DefinitionError",
    "DefinitionParser",
    "Explanation",
    "build_provider",
    "load_node",
    "load_provider",
    "load_text",
    "shipped_providers",
]


def load_provider(text: str, name: str, source: str) -> Provider:
    """A definition's text as a Provider; DefinitionError lists every problem."""
    return build_provider(load_text(text, name, source))


def shipped_providers() -> list[Provider]:
    """The definitions shipped as exporter/providers/<name>.yaml, sorted by name.

    A broken shipped definition is a bug of this package: DefinitionError at import.
    """
    folder = resources.files("exporter.providers")
    found: list[Provider] = []
    problems: list[str] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml") or not entry.is_file():
            continue
        data = entry.read_bytes()
        if len(data) > MAX_SMALL_CONFIG_BYTES:
            problems.append(f"exporter/providers/{entry.name}: larger than the config limit")
            continue
        name = entry.name.removesuffix(".yaml")
        try:
            found.append(
                load_provider(data.decode("utf-8"), name, f"exporter/providers/{entry.name}")
            )
        except DefinitionError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DefinitionError(problems)
    return found

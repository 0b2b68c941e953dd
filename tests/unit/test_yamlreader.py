"""exporter.yamlreader.Reader: the node walk the config and the web config share.

The bounded reads and the composer limits are exercised through the files that use
them (tests/unit/test_config.py "bounded reading", tests/e2e/test_reload_e2e.py); here the
accessors: what each accepts, the exact problem for what it does not, positions,
document order, and that no accessor quotes a value.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.yamlreader import DocumentError, Reader, is_null, kind
from tests.support.examples import examples

SECRET = "sk_live_NEVER_SHOWN_42"


def doc(text: str) -> tuple[Reader, Node]:
    reader = Reader("f.yml")
    root = reader.compose(text)
    assert root is not None
    return reader, root


def fields_of(text: str, *args: object, **kwargs: object) -> tuple[Reader, dict[str, Node]]:
    reader, root = doc(text)
    result = reader.mapping(root, "top", *args, **kwargs)  # type: ignore[arg-type]
    assert result is not None
    return reader, result


# --- mappings -------------------------------------------------------------------------


def test_mapping_reports_duplicate_unknown_and_non_string_keys_in_document_order() -> None:
    reader, fields = fields_of("b: 1\n[x]: 2\na: 3\nzz: 4\na: 5\n", ("a", "b"))
    assert list(fields) == ["b", "a"]
    assert reader.texts() == [
        "f.yml:2:1: top: mapping keys must be plain strings",
        "f.yml:4:1: top.zz: unknown key 'zz'; allowed keys: a, b",
        "f.yml:5:1: top.a: duplicate key",
    ]


def test_mapping_returns_handled_keys_without_listing_them_as_allowed() -> None:
    reader, fields = fields_of("a: 1\nlegacy: 2\nother: 3\n", ("a",), handled=("legacy",))
    assert list(fields) == ["a", "legacy"]
    assert reader.texts() == ["f.yml:3:1: top.other: unknown key 'other'; allowed keys: a"]


def test_mapping_key_nodes_give_each_key_its_position() -> None:
    reader, root = doc("a: 1\nb:\n  c: 2\n")
    fields = reader.mapping(root, "")
    assert fields is not None
    assert fields.key_node("b").start_mark.line == 1
    assert fields["b"].start_mark.line == 2


def test_without_allowed_any_key_is_taken_but_duplicates_still_are_not() -> None:
    reader, fields = fields_of("x: 1\ny: 2\nx: 3\n")
    assert list(fields) == ["x", "y"]
    assert reader.texts() == ["f.yml:3:1: top.x: duplicate key"]


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n", "a list"), (f"{SECRET}\n", "a string"), ("~\n", "nothing"), ("12\n", "a number")],
)
def test_a_non_mapping_is_named_by_kind_never_by_value(text: str, got: str) -> None:
    reader, root = doc(text)
    assert reader.mapping(root, "top", what="a mapping of user: hash") is None
    assert reader.texts() == [f"f.yml:1:1: top: expected a mapping of user: hash, got {got}"]


def test_sequence() -> None:
    reader, root = doc("- a\n- b\n")
    items = reader.sequence(root, "list")
    assert [node.value for node in items or []] == ["a", "b"]
    reader, root = doc("a: 1\n")
    assert reader.sequence(root, "list") is None
    assert reader.texts() == ["f.yml:1:1: list: expected a list, got a mapping"]


# --- scalars --------------------------------------------------------------------------


def test_string_required_empty_and_wrong_kind() -> None:
    reader, fields = fields_of("name: alice\nempty:\nlist: [1]\n")
    parent = next(iter(fields.values()))
    assert reader.string(fields["name"], "top.name", parent) == "alice"
    assert reader.string(None, "top.absent", parent) is None
    assert reader.texts() == [], "absent and not required is no problem"
    assert reader.string(None, "top.absent", parent, required=True) is None
    assert reader.string(fields["empty"], "top.empty", parent) is None
    assert reader.string(fields["list"], "top.list", parent, what="a file path") is None
    assert reader.texts() == [
        "f.yml:1:7: top.absent: is required",
        "f.yml:2:7: top.empty: is empty",
        "f.yml:3:7: top.list: expected a file path, got a list",
    ]


def test_expand_is_the_hook_for_references_in_values() -> None:
    class Upper(Reader):
        def expand(self, node: ScalarNode, where: str, *, secret: bool) -> str:
            if node.value == "bad":
                self.problem(node, where, "cannot expand")
            return str(node.value).upper()

    reader = Upper("f.yml")
    root = reader.compose("a: x\nb: bad\n")
    assert isinstance(root, MappingNode)
    fields = reader.mapping(root, "")
    assert fields is not None
    assert reader.string(fields["a"], "a", root) == "X"
    assert reader.string(fields["b"], "b", root) is None, "a failed expansion gives no value"
    assert reader.texts() == ["f.yml:2:4: b: cannot expand"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("False", False), ("yes", True), ("off", False), ("!!bool on", True)],
)
def test_boolean_accepts_yaml_booleans(value: str, expected: bool) -> None:
    reader, fields = fields_of(f"b: {value}\n")
    assert reader.boolean(fields["b"], "b") is expected
    assert reader.texts() == []


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ('"true"', "a string"),
        ("1", "a number"),
        ("", "nothing"),
        ("[]", "a list"),
        ("!!bool x", "a boolean"),
    ],
)
def test_boolean_rejects_everything_else(value: str, got: str) -> None:
    reader, fields = fields_of(f"b: {value}\n")
    assert reader.boolean(fields["b"], "b") is None
    column = 3 if not value else 4  # `b:` alone: the empty value starts after the colon
    assert reader.texts() == [f"f.yml:1:{column}: b: expected true or false, got {got}"]


@pytest.mark.parametrize(
    ("value", "expected"), [("10", 10), ("0x1f", 31), ("1.5", 1.5), ("1.0e+3", 1000.0), ("-2", -2)]
)
def test_number(value: str, expected: float) -> None:
    reader, fields = fields_of(f"n: {value}\n")
    assert reader.number(fields["n"], "n") == expected
    assert reader.texts() == []


@pytest.mark.parametrize(
    ("value", "got"), [('"10"', "a string"), ("!!int x", "a number"), ("true", "a boolean")]
)
def test_not_a_number(value: str, got: str) -> None:
    reader, fields = fields_of(f"n: {value}\n")
    assert reader.number(fields["n"], "n") is None
    assert reader.texts() == [f"f.yml:1:4: n: expected a number, got {got}"]


def test_choice_quotes_the_invalid_name_and_lists_the_valid_ones() -> None:
    reader, fields = fields_of("v: TLS99\nw: TLS12\nx: [TLS12]\n")
    versions = ("TLS12", "TLS13")
    assert reader.choice(fields["w"], "w", versions) == "TLS12"
    assert reader.choice(fields["v"], "v", versions) is None
    assert reader.choice(fields["x"], "x", versions) is None
    assert reader.texts() == [
        "f.yml:1:4: v: invalid 'TLS99'; valid: TLS12, TLS13",
        "f.yml:3:4: x: expected a string, got a list",
    ]


def test_duration_with_the_readers_minimum_or_the_callers() -> None:
    class Strict(Reader):
        min_duration = 1.0

    reader = Strict("f.yml")
    root = reader.compose("a: 90s\nb: 500ms\nc: 300\nd: 2ms\n")
    assert isinstance(root, MappingNode)
    fields = reader.mapping(root, "")
    assert fields is not None
    assert reader.duration(fields["a"], "a") == 90.0
    assert reader.duration(fields["b"], "b") is None
    assert reader.duration(fields["c"], "c") is None
    assert reader.duration(fields["d"], "d", minimum=0.001) == 0.002
    assert reader.duration(None, "e") is None
    assert reader.texts() == [
        "f.yml:2:4: b: 500ms is too short; the minimum is 1s",
        "f.yml:3:4: c: not a duration: '300' (add a unit, e.g. 300s or 5m)",
    ]


# --- reporting ------------------------------------------------------------------------


def test_secrets_are_scrubbed_from_every_problem_longest_first() -> None:
    reader, fields = fields_of(f"v: {SECRET}x\nw: {SECRET}\n")
    reader.secret(SECRET)
    reader.secret(SECRET + "x")
    reader.secret("ab")  # too short to be one: it would mangle ordinary words
    reader.choice(fields["v"], "v", ("a",))
    reader.choice(fields["w"], "w", ("a",))
    assert reader.texts() == [
        "f.yml:1:4: v: invalid '<redacted>'; valid: a",
        "f.yml:2:4: w: invalid '<redacted>'; valid: a",
    ]


def test_a_problem_without_a_node_has_the_file_alone_and_comes_first() -> None:
    reader, root = doc("a: 1\n")
    reader.problem(root, "a", "second")
    reader.problem(None, "", "first")
    reader.warning(root, "a", "noted")
    assert reader.texts() == ["f.yml: first", "f.yml:1:1: a: second"]
    assert reader.warnings == ["f.yml:1:1: a: noted"]


def test_kind_and_is_null() -> None:
    _, root = doc("a: ~\nb:\nc: x\nd: [1]\ne: {}\nf: 1.5\ng: !!binary aGk=\n")
    assert isinstance(root, MappingNode)
    values = {key.value: value for key, value in root.value}
    assert [is_null(values[k]) for k in "abc"] == [True, True, False]
    assert [kind(values[k]) for k in "cdefg"] == [
        "a string",
        "a list",
        "a mapping",
        "a number",
        "a scalar",
    ]


# --- the document ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "message", "what"),
    [
        (
            "a: [1\n",
            "f.yml:2:1",
            "while parsing a flow sequence at line 1, expected ',' or ']',",
            "syntax",
        ),
        (f"a: b\n {SECRET}: c\n", "f.yml:2:", "mapping values are not allowed here", "syntax"),
        ("a: 'x\x07'\n", "f.yml:1:6", "unacceptable character #x0007", "syntax"),
        ("a: " + "[" * 100 + "\n", "f.yml:1:", "nested deeper than 64 levels", "limit"),
        (f"a: *{SECRET}\n", "f.yml:1:4", "found undefined alias", "syntax"),
    ],
)
def test_a_document_error_has_a_position_and_quotes_nothing(
    text: str, where: str, message: str, what: str
) -> None:
    with pytest.raises(DocumentError) as caught:
        Reader("f.yml").compose(text)
    assert caught.value.where.startswith(where), caught.value.where
    assert message in caught.value.message
    assert caught.value.kind == what
    assert SECRET not in str(caught.value)


def test_an_empty_document_is_none() -> None:
    assert Reader("f.yml").compose("# nothing\n") is None


# --- properties -----------------------------------------------------------------------


def _walk(reader: Reader, node: Node, where: str) -> None:
    """Every accessor on every node: each returns or records, none raises."""
    reader.string(node, where, None)
    reader.boolean(node, where)
    reader.number(node, where)
    reader.duration(node, where)
    reader.choice(node, where, ("a", "b"))
    if isinstance(node, MappingNode):
        fields = reader.mapping(node, where, ("a", "b"), handled=("c",))
        for key, value in (fields or {}).items():
            _walk(reader, value, f"{where}.{key}")
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(reader.sequence(node, where) or []):
            _walk(reader, item, f"{where}[{index}]")


_ATOMS = st.sampled_from(
    ["a", "b", "c", SECRET, "~", "", "1", "0x1f", "1e400", "!!int x", "!!bool q", "5m", "1s"]
)
_YAML = st.recursive(
    _ATOMS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(_ATOMS, inner), max_size=4).map(
            lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=examples(200), deadline=None)
@given(st.one_of(_YAML, st.text(max_size=60)))
def test_any_document_walks_into_positioned_problems_in_order_without_its_values(
    text: str,
) -> None:
    reader = Reader("f.yml")
    failed: DocumentError | None = None
    root: Node | None = None
    try:
        root = reader.compose(text)
    except DocumentError as exc:
        failed = exc
    if failed is not None:
        assert failed.where.startswith("f.yml")
        return
    if root is None:
        return
    reader.secret(SECRET)
    _walk(reader, root, "top")
    positions = [(line, column) for line, column, _ in reader.problems]
    texts = reader.texts()
    assert len(texts) == len(positions)
    for text_ in texts:
        assert text_.startswith("f.yml:"), text_
        assert SECRET not in text_, text_
    ordered = sorted(positions)
    assert [t.split(": ", 1)[0] for t in texts] == [
        f"f.yml:{line + 1}:{column + 1}" for line, column in ordered
    ]

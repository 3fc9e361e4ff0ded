"""Reading YAML documents and reporting what is wrong with them, one line per problem.

Every problem is rendered as::

    FILE:LINE:COL: MESSAGE @ $.PATH (hint: HINT)

``LINE:COL`` (1-based) is where the offending value starts in the file, or its key for an unknown
or duplicate key, or the enclosing mapping for a missing key.  It is left out (``FILE: MESSAGE @
$.PATH``) when a document did not come from YAML text.  ``$.PATH`` follows JSONPath: ``.key`` for
mapping keys, ``[i]`` for list items, ``['odd key']`` for keys that are not identifiers.  The hint
is there only when there is something useful to say.

Documents are read with PyYAML's safe loader, which builds only plain data (dicts, lists,
strings, numbers, booleans, null); the composed node tree is kept beside the data to map a
``$.path`` back to a position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Union

import attrs
import yaml

from xv_core.errors import ConfigError, closest_name

PathPart = Union[str, int]
Path = tuple[PathPart, ...]
ROOT: Path = ()

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*')\]")


def format_path(path: Sequence[PathPart]) -> str:
    """``("steps", 0, "args", "x")`` -> ``"$.steps[0].args.x"``."""
    out = "$"
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _IDENT.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out


def parse_path(text: str) -> Path:
    """The inverse of :func:`format_path`; raises ValueError for anything else."""
    if not text.startswith("$"):
        raise ValueError(f"a $.path starts with '$', got {text!r}")
    parts: list[PathPart] = []
    pos = 1
    while pos < len(text):
        match = _PATH_PART.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read the $.path {text!r} at {text[pos:]!r}")
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(_unquote(quoted))
        pos = match.end()
    return tuple(parts)


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


def describe(value: object) -> str:
    """A value as a person wrote it in YAML, with what it is: ``'abc' (a string)``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def did_you_mean(word: object, choices: Iterable[str]) -> str | None:
    """``"did you mean 'lru'?"`` when one of ``choices`` is close to ``word``, else None."""
    close = closest_name(word, choices)
    return f"did you mean {close!r}?" if close else None


@attrs.frozen
class Problem:
    """One thing wrong with a document.

    ``at_key`` places the position on the key at ``path`` rather than on its value (unknown and
    duplicate keys).
    """

    path: Path
    message: str
    hint: str | None = None
    at_key: bool = False

    def render(self, position: tuple[int, int] | None) -> str:
        """The problem as one line relative to its file (the file name is added by
        :class:`~xv_core.errors.ConfigError`)."""
        text = f"{self.message} @ {format_path(self.path)}"
        if self.hint:
            text += f" (hint: {self.hint})"
        if position is not None:
            text = f"{position[0]}:{position[1]}: {text}"
        return text


class Locator:
    """Maps a ``$.path`` to the line and column of a YAML document's composed node tree."""

    def __init__(self, root: yaml.Node | None):
        self.root = root
        # Per mapping node (by id), its scalar keys' text -> (key node, value node), the last
        # of duplicates as YAML keeps it: built on first use, so that locating the problems
        # of a mapping with many keys stays linear.
        self._keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    def _entry(self, node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
        index = self._keys.get(id(node))
        if index is None:
            index = self._keys[id(node)] = {
                k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
        return index.get(key)

    def position(self, path: Sequence[PathPart], at_key: bool = False) -> tuple[int, int] | None:
        """1-based (line, column) of the node at ``path``: the deepest node that exists on the
        way there, so a missing key points at its mapping.  None without a node tree."""
        node = self.root
        if node is None:
            return None
        mark = node.start_mark
        for i, part in enumerate(path):
            last = i == len(path) - 1
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                entry = self._entry(node, str(part))
                if entry is not None:
                    key_node, value_node = entry
                    if last and at_key:
                        return _one_based(key_node.start_mark)
                    child = value_node
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    child = node.value[part]
            if child is None:
                break
            node, mark = child, child.start_mark
        return _one_based(mark)


def _one_based(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


class Problems:
    """Collects the problems of one document and raises them all together."""

    def __init__(self, source: str, locator: Locator | None = None):
        self.source = source
        self.locator = locator or Locator(None)
        self.items: list[Problem] = []

    def add(self, path: Sequence[PathPart], message: str, hint: str | None = None, *,
            at_key: bool = False) -> None:
        self.items.append(Problem(tuple(path), message, hint, at_key))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self) -> list[str]:
        """Each problem once, in the order they appear in the file (unlocated ones last)."""
        located = []
        seen = set()
        for order, problem in enumerate(self.items):
            pos = self.locator.position(problem.path, problem.at_key)
            line = problem.render(pos)
            if line in seen:
                continue
            seen.add(line)
            located.append(((0, pos) if pos else (1, (0, 0)), order, line))
        return [line for _key, _order, line in sorted(located)]

    def error(self) -> ConfigError:
        return ConfigError(self.lines(), source=self.source)

    def raise_if_any(self) -> None:
        if self.items:
            raise self.error()


def located_error(problems: Iterable[Sequence[str | None]], label: str,
                  locator: Locator | None) -> ConfigError:
    """A ConfigError in the loader's format for ``(path, message[, hint])`` triples, where
    ``path`` is a ``$.path`` string; positions come from ``locator`` when there is one."""
    collected = Problems(label, locator)
    for path, message, *rest in problems:
        hint = rest[0] if rest else None
        try:
            parts = parse_path(str(path))
        except ValueError:
            parts = ROOT
        collected.add(parts, str(message), hint)
    return collected.error()


#: How deep mappings and lists may nest in a document (the fabric and job formats need five).
MAX_DEPTH = 64


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, whose integers too long for Python to read (over 4,300 digits)
    are a located error rather than a bare ValueError, and whose mapping keys are names: a
    plain key YAML would read as another type (``null``, ``true``, ``3``) is its text, so
    that a message names the key as written and finds where it is."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        mapping = super().construct_mapping(node, deep=deep)
        if all(type(key) is str for key in mapping):
            return mapping
        out = {}
        for key_node, _ in node.value:  # (merge keys already flattened into it)
            key = self.construct_object(key_node, deep=deep)
            if type(key) is not str and isinstance(key_node, yaml.ScalarNode):
                out[key_node.value] = mapping[key]
            else:
                out[key] = mapping[key]
        return out

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} characters is too long to read",
                node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def read_yaml(text: str, source: str) -> tuple[object, Locator, list[Problem]]:
    """Parse one YAML document safely: its data, a locator for its positions, and the duplicate
    keys found (YAML would silently keep the last one).

    Raises ConfigError for text that is not YAML, with the position the parser stopped at; for
    control characters YAML does not allow; for mappings and lists nested more than
    :data:`MAX_DEPTH` deep; and for strings no file name or UTF-8 text can hold (a NUL
    character, a lone surrogate such as ``"\\ud800"``).
    """
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        _check_nodes(node, source)
        # Before constructing, which flattens merge keys (``<<: *defaults``) into their
        # mappings: a key given beside a merge overrides the merged one, it is no duplicate.
        duplicates = list(_duplicate_keys(node))
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context}"
        hint = None
        if exc.context and exc.problem and exc.context_mark is not None:
            hint = f"{exc.context} at line {exc.context_mark.line + 1}"
        line = f"{message}" + (f" (hint: {hint})" if hint else "")
        if mark is not None:
            line = f"{mark.line + 1}:{mark.column + 1}: {line}"
        raise ConfigError([line], source=source) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, before parsing
        line_no = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError([f"{line_no}:{col}: invalid YAML: the control character "
                           f"{exc.character:#04x} (hint: YAML text holds no control characters "
                           f"but tab and line ends; write it as an escape in a double-quoted "
                           f"string, like \"\\x{exc.character:02x}\", if you mean it)"],
                          source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"], source=source) from None
    except RecursionError:  # nesting deeper than the parser can follow, before _check_nodes
        raise ConfigError([f"the document nests mappings or lists more than {MAX_DEPTH} deep"],
                          source=source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, Locator(node), duplicates


def _check_nodes(root: yaml.Node | None, source: str) -> None:
    """Refuse what no field of ours takes and later steps cannot handle: nesting past
    :data:`MAX_DEPTH`, and strings with a NUL or a lone surrogate (each located)."""
    seen: set[int] = set()  # aliases can make the node graph cyclic
    stack: list[tuple[yaml.Node, int]] = [(root, 0)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        mark = node.start_mark
        where = f"{mark.line + 1}:{mark.column + 1}: "
        if isinstance(node, yaml.ScalarNode):
            value = node.value
            if "\0" in value:
                raise ConfigError([f"{where}a string holds a NUL character (hint: no file "
                                   f"name or name here can hold one)"], source=source)
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ConfigError([f"{where}a string holds the lone surrogate "
                                   f"{value[exc.start]!r}, which UTF-8 cannot encode (hint: "
                                   f"write the character itself, or a pair of surrogates)"],
                                  source=source) from None
            continue
        if depth >= MAX_DEPTH:
            raise ConfigError([f"{where}mappings or lists nest more than {MAX_DEPTH} deep here"],
                              source=source)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def _duplicate_keys(root: yaml.Node | None) -> Iterable[Problem]:
    seen_nodes: set[int] = set()  # aliases can make the node graph cyclic
    stack: list[tuple[yaml.Node, Path]] = [(root, ROOT)] if root is not None else []
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                if key_node.tag == "tag:yaml.org,2002:merge":  # merged, not a key of its own
                    stack.append((value_node, path))
                    continue
                key = key_node.value
                if key in first_line:
                    yield Problem(path + (key,), f"duplicate key {key!r}",
                                  f"it is also at line {first_line[key]}; YAML keeps only the last",
                                  at_key=True)
                else:
                    first_line[key] = key_node.start_mark.line + 1
                stack.append((value_node, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, path + (i,)))

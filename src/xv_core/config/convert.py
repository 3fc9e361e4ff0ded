"""The cattrs converter for configuration, and cattrs' errors turned into :class:`Problem` lines.

The converter is strict where cattrs' defaults are lenient, because a config file is written by
hand and a silent conversion hides a mistake: ``threads: "2"`` is not an integer, ``2.7`` is not
``2``, ``yes`` is not a path, a string is not a list of characters.  Every attrs class is
structured with unknown keys forbidden, and when its validators refuse the values each failing
validator is reported, not only the first one attrs would raise.
"""

from __future__ import annotations

import enum
import math
import pathlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote, ClassValidationError, ForbiddenExtraKeysError,
    IterableValidationError, IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from xv_core.config.problems import Path, Problem, describe, did_you_mean
from xv_core.config.units import Size, SizeError, parse_size

#: For an attrs class, the YAML key of each attribute whose key differs from its name.
Renames = Mapping[type, Mapping[str, str]]


class Invalid(ValueError):
    """A value a config hook or validator refuses, with an optional hint.

    Validators of plugin option classes may raise it to add a hint; any other exception's text is
    reported as it is.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def _expect(kind: str, value: object, hint: str | None = None,
            unquoted: tuple[type, ...] = ()) -> Invalid:
    """An Invalid for ``value`` where ``kind`` was expected.  When ``value`` is a quoted string
    that YAML would read as one of the ``unquoted`` types, the hint says to drop the quotes."""
    if hint is None and isinstance(value, str) and unquoted:
        try:
            import yaml

            parsed = yaml.safe_load(value)
        except Exception:  # noqa: BLE001 - a hint is best effort
            parsed = value
        if isinstance(parsed, unquoted) and not (isinstance(parsed, bool) and bool not in unquoted):
            hint = "remove the quotes"
    return Invalid(f"expected {kind}, got {describe(value)}", hint)


#: Integers in documents fit 64 bits (signed): what numpy, files and the OS take.
INT_LIMIT = 1 << 63


def _structure_int(value: object, _type: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            raise _expect("an integer", value, hint=f"write {int(value)}")
        raise _expect("an integer", value, unquoted=(int,))
    if not -INT_LIMIT <= value < INT_LIMIT:
        raise Invalid(f"expected an integer that fits 64 bits, got one of {len(str(value))} "
                      f"digits")
    return value


def _structure_float(value: object, _type: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _expect("a number", value, unquoted=(int, float))
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        got = ("an integer too large for one" if not isinstance(value, float) else ".nan"
               if math.isnan(value) else ".inf" if value > 0 else "-.inf")
        raise Invalid(f"expected a finite number, got {got}")
    return number


def _structure_bool(value: object, _type: object) -> bool:
    if not isinstance(value, bool):
        raise _expect("true or false", value, unquoted=(bool,))
    return value


def _structure_str(value: object, _type: object) -> str:
    if not isinstance(value, str):
        hint = "quote it" if isinstance(value, (bool, int, float)) else None
        raise _expect("a string", value, hint)
    return value


def _structure_path(value: object, _type: object) -> pathlib.Path:
    if not isinstance(value, str) or not value:
        hint = "quote it" if isinstance(value, (bool, int, float)) else None
        raise _expect("a path", value, hint)
    return pathlib.Path(value)


def _structure_size(value: object, _type: object) -> int:
    try:
        return parse_size(value)
    except SizeError as exc:
        raise Invalid(exc.message, exc.hint) from None


def _passthrough(value: object, _type: object) -> object:
    return value


def type_name(tp: Any) -> str:
    """What a person should write for values of ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Size:
        return "a size like 256MiB"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is pathlib.Path:
        return "a path"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin in (list, tuple, set, frozenset) or origin in (Sequence,) or tp in (list, tuple):
        return "a list"
    if origin in (dict, Mapping) or tp is dict or attrs.has(tp):
        return "a mapping"
    if _is_union(tp):
        return " or ".join(type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return getattr(tp, "__name__", repr(tp))


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_sequence(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return tp in (list, tuple) or origin in (list, tuple, set, frozenset, Sequence)


def _is_mapping(tp: Any) -> bool:
    return tp is dict or typing.get_origin(tp) in (dict, Mapping)


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def make_converter(renames: Renames | None = None) -> cattrs.Converter:
    """A strict converter: exact scalar types, lists only from lists, unknown keys forbidden.

    ``renames`` gives, for attrs classes whose YAML keys differ from their attribute names
    (``global`` is a Python keyword), the key of each renamed attribute.
    """
    renames = renames or {}
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def structure_sequence(value: object, tp: Any) -> Any:
        if not isinstance(value, list):
            raise _expect("a list", value)
        origin = typing.get_origin(tp) or tp
        args = typing.get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise Invalid(f"expected a list of {len(args)} items, got {len(value)}")
            item_types = list(args)
        else:
            item_types = [args[0] if args else Any] * len(value)
        items, errors = [], []
        for i, (item, item_type) in enumerate(zip(value, item_types)):
            try:
                items.append(conv.structure(item, item_type))
            except Exception as exc:  # collected: every bad item is reported
                exc.__notes__ = [*getattr(exc, "__notes__", []),
                                 IterableValidationNote(f"item {i}", i, item_type)]
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring a list", errors, tp)
        if origin in (list, Sequence):
            return items
        return origin(items)

    def structure_mapping(value: object, tp: Any) -> Any:
        if not isinstance(value, dict):
            raise _expect("a mapping", value)
        args = typing.get_args(tp)
        key_type, value_type = args if args else (Any, Any)
        out, errors = {}, []
        for key, item in value.items():
            try:
                out[conv.structure(key, key_type)] = conv.structure(item, value_type)
            except Exception as exc:
                exc.__notes__ = [*getattr(exc, "__notes__", []),
                                 IterableValidationNote(f"key {key!r}", key, value_type)]
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring a mapping", errors, tp)
        return out

    def structure_literal(value: object, tp: Any) -> Any:
        allowed = typing.get_args(tp)
        for choice in allowed:
            if value == choice and type(value) is type(choice):
                return choice
        raise Invalid(f"expected one of {', '.join(repr(a) for a in allowed)}, "
                      f"got {describe(value)}", did_you_mean(value, [str(a) for a in allowed]))

    def structure_enum(value: object, tp: Any) -> Any:
        for member in tp:
            if value == member.value and type(value) is type(member.value):
                return member
        values = [str(m.value) for m in tp]
        raise Invalid(f"expected one of {', '.join(repr(m.value) for m in tp)}, "
                      f"got {describe(value)}", did_you_mean(value, values))

    def structure_union(value: object, tp: Any) -> Any:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        # A value whose own type is a member goes there first: 2 is an int in ``int | float``.
        members.sort(key=lambda a: 0 if isinstance(a, type) and type(value) is a else 1)
        first: Exception | None = None
        for member in members:
            try:
                return conv.structure(value, member)
            except Exception as exc:
                first = first or exc
        if len(members) == 1 and first is not None:
            raise first
        raise Invalid(f"expected {type_name(tp)}, got {describe(value)}")

    def structure_attrs_factory(cl: type) -> Callable[[object, Any], Any]:
        keys = dict(renames.get(cl, {}))
        fn = make_dict_structure_fn(cl, conv, _cattrs_forbid_extra_keys=True,
                                    **{name: override(rename=key) for name, key in keys.items()})

        def structure(value: object, _type: Any) -> Any:
            if not isinstance(value, dict):
                raise _expect("a mapping", value)
            try:
                return fn(value, cl)
            except ClassValidationError as exc:
                with_notes, without = exc.group_exceptions()
                if with_notes:
                    raise  # a value of the wrong type: validators would only add noise
                # Every known value was read, and unknown keys or __init__ refused them.  attrs
                # stops at the first failing validator and cattrs runs none when there are
                # unknown keys, so run each validator to report everything at once.
                extra = [e for e in without if isinstance(e, ForbiddenExtraKeysError)]
                refused = [e for e in without if not isinstance(e, ForbiddenExtraKeysError)]
                errors = extra + (_validator_errors(conv, cl, value, keys) or refused)
                raise ClassValidationError(exc.message, errors, cl) from None

        return structure

    conv.register_structure_hook_factory(attrs.has, structure_attrs_factory)
    conv.register_structure_hook_func(_is_sequence, structure_sequence)
    conv.register_structure_hook_func(_is_mapping, structure_mapping)
    conv.register_structure_hook_func(lambda t: typing.get_origin(t) is typing.Literal,
                                      structure_literal)
    conv.register_structure_hook_func(_is_enum, structure_enum)
    conv.register_structure_hook_func(_is_union, structure_union)
    conv.register_structure_hook_func(lambda t: t is Any or t is object, _passthrough)
    conv.register_structure_hook(Size, _structure_size)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(pathlib.Path, _structure_path)
    return conv


def _validator_errors(conv: cattrs.Converter, cl: type, value: Mapping[str, Any],
                      keys: Mapping[str, str]) -> list[Exception]:
    """Each validator of ``cl`` that refuses the structured ``value``, as noted exceptions.

    Builds the instance without running ``__init__`` so that one validator's failure does not hide
    the next.  Returns [] when that cannot be done (the caller then reports attrs' own error).
    """
    try:
        attrs.resolve_types(cl)
        fields = attrs.fields(cl)
        shell = object.__new__(cl)
        for a in fields:
            key = keys.get(a.name, a.name)
            if a.init and key in value:
                item = conv.structure(value[key], a.type)
                if a.converter is not None:
                    item = a.converter(item)
            elif isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
                factory = a.default.factory  # type: ignore[union-attr]
                item = factory(shell) if a.default.takes_self else factory()  # type: ignore
            elif a.default is not attrs.NOTHING:
                item = a.default
            else:
                return []
            object.__setattr__(shell, a.name, item)
    except Exception:  # noqa: BLE001 - fall back to the error attrs raised
        return []
    errors: list[Exception] = []
    for a in fields:
        if a.validator is None:
            continue
        try:
            a.validator(shell, a, getattr(shell, a.name))
        except Exception as exc:  # every validator's complaint is a problem of its own
            exc.__notes__ = [*getattr(exc, "__notes__", []), AttributeValidationNote(
                f"Validating {cl.__qualname__} @ attribute {a.name}", a.name, a.type)]
            errors.append(exc)
    return errors


_FAILED = object()


def structure(conv: cattrs.Converter, value: object, tp: Any, path: Path,
              out: list[Problem], *, renames: Renames | None = None,
              other_keys: Sequence[str] = ()) -> Any | None:
    """``conv.structure(value, tp)``, adding a Problem to ``out`` for everything wrong.

    Returns None (after adding problems) when ``value`` cannot be structured.  ``other_keys`` are
    keys of the enclosing YAML mapping handled elsewhere (``name``, ``kind``), listed in the hint
    of an unknown key.
    """
    result = _structure(conv, value, tp, path, out, renames or {}, other_keys)
    return None if result is _FAILED else result


def _structure(conv: cattrs.Converter, value: object, tp: Any, path: Path, out: list[Problem],
               renames: Renames, other_keys: Sequence[str] = ()) -> Any:
    try:
        return conv.structure(value, tp)
    except Exception as exc:  # turned into problems, never shown as a traceback
        out.extend(problems_from(exc, path, renames, other_keys))
        return _FAILED


def structure_fields(conv: cattrs.Converter, value: object, cl: type, path: Path,
                     out: list[Problem], *, renames: Renames | None = None
                     ) -> dict[str, Any] | None:
    """Structure each field of the attrs class ``cl`` on its own, for documents whose fields
    are checked together afterwards: one bad field must not hide the others' problems.

    Returns ``{attribute name: value}`` for the fields present and readable (None when ``value``
    is not a mapping), after adding a Problem to ``out`` for every unknown key, missing required
    key and unreadable value.  ``cl``'s validators are not run.
    """
    renames = renames or {}
    keys = renames.get(cl, {})
    if not isinstance(value, dict):
        out.append(Problem(path, f"expected a mapping, got {describe(value)}"))
        return None
    fields = attrs.fields(attrs.resolve_types(cl))
    known = [keys.get(a.name, a.name) for a in fields]
    for key in value:
        if key not in known:
            hint = did_you_mean(key, known) or f"known keys: {', '.join(known)}"
            out.append(Problem(path + (str(key),), f"unknown key {str(key)!r}", hint,
                               at_key=True))
    result: dict[str, Any] = {}
    for a, key in zip(fields, known):
        if key in value:
            item = _structure(conv, value[key], a.type, path + (key,), out, renames)
            if item is not _FAILED:
                result[a.name] = item
        elif a.default is attrs.NOTHING:
            out.append(Problem(path, f"missing required key {key!r}"))
    return result


def problems_from(exc: BaseException, path: Path, renames: Renames,
                  other_keys: Sequence[str] = ()) -> list[Problem]:
    """The problems in a (possibly nested) cattrs error, each with its ``$.path``.

    Unlike :func:`cattrs.transform_error`, the messages of validators and hooks are kept word
    for word rather than reduced to "invalid value".
    """
    if isinstance(exc, ClassValidationError):
        keys = renames.get(exc.cl, {})
        with_notes, without = exc.group_exceptions()
        out: list[Problem] = []
        for sub, note in with_notes:
            key = keys.get(note.name, note.name)
            if isinstance(sub, KeyError) and not isinstance(sub, (ClassValidationError,)):
                out.append(Problem(path, f"missing required key {key!r}"))
            else:
                out.extend(problems_from(sub, path + (key,), renames))
        for sub in without:
            if isinstance(sub, ForbiddenExtraKeysError):
                known = [*other_keys, *(keys.get(a.name, a.name) for a in attrs.fields(sub.cl)
                                        if a.init)]
                for key in sorted(sub.extra_fields, key=str):
                    hint = did_you_mean(key, known) or f"known keys: {', '.join(known)}"
                    out.append(Problem(path + (key,), f"unknown key {key!r}", hint, at_key=True))
            else:
                out.extend(problems_from(sub, path + _attribute_of(sub, exc.cl, keys), renames))
        return out
    if isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        out = []
        for sub, note in with_notes:
            out.extend(problems_from(sub, path + (note.index,), renames))
        for sub in without:
            out.extend(problems_from(sub, path, renames))
        return out
    if isinstance(exc, (Invalid, SizeError)):
        return [Problem(path, exc.message, exc.hint)]
    message = str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc)
    return [Problem(path, message or type(exc).__name__)]


def _attribute_of(exc: BaseException, cl: type, keys: Mapping[str, str]) -> Path:
    """The key an attrs validator's exception is about, when it says (attrs passes the
    Attribute in ``args``), as a one-part path; else the class's own path."""
    for arg in getattr(exc, "args", ())[1:]:
        if isinstance(arg, attrs.Attribute) and arg.name in attrs.fields_dict(cl):
            return (keys.get(arg.name, arg.name),)
    return ()

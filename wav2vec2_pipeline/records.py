"""Typed records for the files between stages: dataclasses with a versioned format, to and from JSON.

Every file a stage reads from another stage is one of these, so a missing, mistyped or foreign field is one
error that names the file and the stage to re-run, never a KeyError deep in the code.
"""

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_json


class Record(Protocol):
    FORMAT: ClassVar[str]
    PRODUCED_BY: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Any]]


R = TypeVar("R", bound=Record)


class _Malformed(Exception):
    """A field that does not fit its type; `where` is its JSON path."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def _decode(kind: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _decode(next(a for a in args if a is not type(None)), value, where)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _Malformed(where, f"expected an object, got {value!r:.40}")
        hints = typing.get_type_hints(kind)
        fields = {}
        for field in dataclasses.fields(kind):
            if field.name in value:
                fields[field.name] = _decode(hints[field.name], value[field.name], f"{where}.{field.name}")
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise _Malformed(where, f"missing field {field.name!r}")
        return kind(**fields)
    if origin is list:
        if not isinstance(value, list):
            raise _Malformed(where, f"expected a list, got {value!r:.40}")
        return [_decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise _Malformed(where, f"expected a list of {len(args)}, got {value!r:.40}")
        item_kinds = [args[0]] * len(value) if args[-1] is Ellipsis else args
        return tuple(
            _decode(k, item, f"{where}[{i}]") for i, (k, item) in enumerate(zip(item_kinds, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise _Malformed(where, f"expected an object, got {value!r:.40}")
        return {key: _decode(args[1], item, f"{where}.{key}") for key, item in value.items()}
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Malformed(where, f"expected {kind.__name__}, got {value!r:.40}")
    return value


def to_json(record: object) -> dict[str, Any]:
    """The record as JSON-ready data, its format first."""
    data = dataclasses.asdict(record)  # type: ignore[call-overload]
    fmt = getattr(record, "FORMAT", None)
    return {"format": fmt, **data} if fmt else data


def is_saved(cls: type, path: Path) -> bool:
    """Whether `path` holds a record of `cls`'s kind, any version of its format (`save` writes it first): an
    earlier output, safe to overwrite."""
    family = cls.FORMAT.rsplit("/", 1)[0] + "/"
    try:
        with path.open("rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return f'"format": "{family}'.encode() in head


def save(path: Path, record: object) -> None:
    atomic_write_json(path, to_json(record))


def load(cls: type[R], path: Path, others: tuple[type, ...] = ()) -> R:
    """Read a record of type `cls`. A file of one of the `others` formats gets a message naming what it is
    (e.g. input bins where logits were expected); anything else malformed names the file and its producer."""
    if not path.is_file():
        raise PipelineError(f"{path} not found. Run {cls.PRODUCED_BY} first.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror or error}") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PipelineError(f"{path} is not valid JSON ({error}). Re-run {cls.PRODUCED_BY}.") from error
    fmt = raw.get("format") if isinstance(raw, dict) else None
    for other in others:
        if fmt == other.FORMAT:
            raise PipelineError(f"{path} was written by {other.PRODUCED_BY}, not by {cls.PRODUCED_BY}: wrong path?")
    if fmt != cls.FORMAT:
        raise PipelineError(
            f"{path} is not of format {cls.FORMAT} (it says {fmt!r}); re-run {cls.PRODUCED_BY} with this version"
        )
    body = {key: value for key, value in raw.items() if key != "format"}
    try:
        return _decode(cls, body, path.name)
    except _Malformed as error:
        raise PipelineError(f"{path} is malformed ({error}); re-run {cls.PRODUCED_BY}") from error

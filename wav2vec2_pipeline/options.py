"""Options declared once, as fields of a frozen dataclass per concern, from which the command line is built:
the help, the default and the check (the dataclass's `__post_init__`) live in one place, and a script learns
which options were given from argparse itself rather than by comparing them with their defaults."""

import argparse
import dataclasses
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_SCALARS = (int, float, str, Path)


def option(default: Any = dataclasses.MISSING, help: str = "", **argparse_kwargs: Any) -> Any:
    """A field that is also a command-line option `--<name>` (argparse's keyword arguments beyond help and type
    where the field's own type does not say them)."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_kwargs})


def group(cls: type) -> Any:
    """A field that holds another concern's options (their flags sit beside this one's on the command line)."""
    return dataclasses.field(default_factory=cls, metadata={"group": cls})


def _argument(field: dataclasses.Field) -> dict[str, Any]:
    kwargs = {key: value for key, value in field.metadata.items() if key != "help"}
    required = field.default is dataclasses.MISSING
    help_text = field.metadata.get("help", "")
    if field.type is bool or field.default is True or field.default is False:
        kwargs.setdefault("action", argparse.BooleanOptionalAction if field.default else "store_true")
    else:
        if "type" not in kwargs and field.type in _SCALARS:
            kwargs["type"] = field.type
        if not required and field.default is not None:
            help_text = f"{help_text} (default: {field.default})" if help_text else f"default: {field.default}"
    return {"help": help_text, "required": required, **kwargs}


def add_options(
    parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = (), helps: dict[str, str] | None = None
) -> None:
    """`--<field>` for every option of `cls` and of the groups it holds, none with a default of its own: an
    option not given is absent from the parsed namespace, and takes the dataclass's default when built. `helps`:
    another script's own words for an option it takes otherwise (the Ray driver's --backend)."""
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        if "group" in field.metadata:
            add_options(parser, field.metadata["group"], skip=skip, helps=helps)
        elif "help" in field.metadata:
            argument = _argument(field)
            if helps and field.name in helps:
                argument["help"] = helps[field.name]
            parser.add_argument(f"--{field.name}", default=argparse.SUPPRESS, **argument)


def given(args: argparse.Namespace, cls: type) -> list[str]:
    """The flags of `cls`'s options that were given on the command line."""
    flags = []
    for field in dataclasses.fields(cls):
        if "group" in field.metadata:
            flags += given(args, field.metadata["group"])
        elif "help" in field.metadata and hasattr(args, field.name):
            flags.append(f"--{field.name}")
    return flags


def build(cls: type[T], args: argparse.Namespace, **fixed: Any) -> T:
    """`cls` from the options given, the groups it holds built the same way; `fixed` sets fields outright."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in fixed:
            values[field.name] = fixed[field.name]
        elif "group" in field.metadata:
            values[field.name] = build(field.metadata["group"], args)
        elif hasattr(args, field.name):
            values[field.name] = getattr(args, field.name)
    return cls(**values)

"""Atomic file writes, so an interrupted stage never leaves a half file that looks whole."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wav2vec2_pipeline.errors import PipelineError

_UMASK = os.umask(0)
os.umask(_UMASK)


def make_dir(path: Path) -> None:
    """mkdir -p, failing with a readable message (read-only disk, a file in the way, ...)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PipelineError(f"cannot create {path}: {error.strerror or error}. Choose another output dir.") from error


def first_line(path: Path) -> str | None:
    """The first line of a text file, for telling whether it is an earlier output; None where it is not UTF-8
    text or cannot be read."""
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline()
    except (OSError, UnicodeDecodeError):
        return None


def check_output_dir(path: Path, flag: str) -> None:
    """Refuse, before any work, an output dir that is a file or lies under one."""
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise PipelineError(f"{flag} {path}: {ancestor} is a file; pass a dir")
            return


def check_output_file(path: Path, flag: str, ours: Callable[[Path], bool], keep: tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, an output file path that names a dir, one of the files in `keep` (inputs that
    writing it would destroy), or an existing file that `ours` does not recognise as an earlier such output."""
    if path.is_dir():
        raise PipelineError(f"{flag} {path} is a dir; pass the path of a file to write")
    if any(path.resolve() == other.resolve() for other in keep):
        raise PipelineError(f"{flag} {path} is one of this stage's inputs; write it elsewhere")
    if path.exists() and not ours(path):
        raise PipelineError(
            f"{flag} {path} exists and is not an earlier output of this kind; remove it or choose another path"
        )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, then rename it into place."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide outputs from other users
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
        os.replace(tmp_name, path)
    except OSError as error:
        raise PipelineError(
            f"cannot write {path}: {error.strerror or error}. Check free space and write permission in {path.parent}."
        ) from error
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")

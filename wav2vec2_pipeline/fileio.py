"""Atomic file writes, so an interrupted stage never leaves a half file that looks whole."""

import json
import os
import tempfile
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


def read_json(path: Path, what: str, produced_by: str) -> Any:
    """Read a JSON file another stage wrote; a missing or broken one says which stage to re-run."""
    if not path.is_file():
        raise PipelineError(f"{path} not found ({what}). Run {produced_by} first.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PipelineError(f"{path} is not valid JSON ({error}). Re-run {produced_by}.") from error

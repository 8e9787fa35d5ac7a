"""The raw bin format: little-endian float32 in C order, no header; its shape comes from its record."""

import re
from pathlib import Path

import numpy as np

from wav2vec2_pipeline.errors import PipelineError

DTYPE = np.dtype("<f4")
_BIN_NAME = re.compile(r"^batch_(\d+)\.bin$")


def bin_name(index: int) -> str:
    return f"batch_{index}.bin"


def bin_index(name: str) -> int:
    """The batch number in `batch_<i>.bin`, for ordering bins numerically rather than as text."""
    match = _BIN_NAME.match(name)
    if match is None:
        raise PipelineError(f"{name}: expected a bin named batch_<i>.bin")
    return int(match.group(1))


def list_bins(directory: Path) -> list[Path]:
    """The `batch_<i>.bin` files of a dir in batch order."""
    if not directory.is_dir():
        kind = "is a file, not a dir of bins" if directory.exists() else "does not exist"
        raise PipelineError(f"{directory} {kind}")
    return sorted(
        (p for p in directory.glob("batch_*.bin") if _BIN_NAME.match(p.name)), key=lambda p: bin_index(p.name)
    )


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return " x ".join(str(dim) for dim in shape)


def nbytes(shape: tuple[int, ...] | list[int]) -> int:
    return int(np.prod(shape)) * DTYPE.itemsize


def is_whole(path: Path, shape: tuple[int, ...] | list[int]) -> bool:
    """Whether `path` holds exactly one float32 array of `shape` (what a finished write leaves)."""
    return path.is_file() and path.stat().st_size == nbytes(shape)


def read_bytes(path: Path, shape: tuple[int, ...] | list[int], hint: str) -> bytearray:
    """The bin's bytes (writable, so arrays over them can go to torch as they are), failing (naming the file)
    unless it holds exactly one float32 array of `shape`."""
    expected = nbytes(shape)
    try:
        size = path.stat().st_size
        if size != expected:
            raise PipelineError(
                f"{path.name} has {size} bytes; expected {shape_text(shape)} float32 = {expected}. {hint}"
            )
        data = bytearray(expected)
        with path.open("rb") as handle:
            handle.readinto(data)
    except FileNotFoundError:
        raise PipelineError(f"{path} not found. {hint}") from None
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror or error}") from error
    return data


def as_array(data: bytearray, shape: tuple[int, ...] | list[int]) -> np.ndarray:
    return np.frombuffer(data, dtype=DTYPE).reshape(shape)

"""The raw `.bin` format between stages: C-order float32, no header, shape known from the map."""

import re
from pathlib import Path

import numpy as np

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_bytes, atomic_write_json, read_json

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
        raise PipelineError(f"{directory} does not exist")
    return sorted(
        (p for p in directory.glob("batch_*.bin") if _BIN_NAME.match(p.name)), key=lambda p: bin_index(p.name)
    )


def shape_text(shape: tuple[int, ...]) -> str:
    return " x ".join(str(dim) for dim in shape)


def nbytes(shape: tuple[int, ...] | list[int]) -> int:
    return int(np.prod(shape)) * DTYPE.itemsize


def is_whole(path: Path, shape: tuple[int, ...] | list[int]) -> bool:
    """Whether `path` holds exactly one float32 array of `shape` (what a finished write leaves)."""
    return path.is_file() and path.stat().st_size == nbytes(shape)


def check_bin_size(path: Path, shape: tuple[int, ...], hint: str) -> None:
    """Fail, naming the file, unless it holds exactly one float32 array of `shape`."""
    expected = nbytes(shape)
    if not path.is_file():
        raise PipelineError(f"{path} not found. {hint}")
    actual = path.stat().st_size
    if actual != expected:
        raise PipelineError(
            f"{path.name} has {actual} bytes; expected {shape_text(shape)} float32 = {expected}. {hint}"
        )


def write_bin(path: Path, array: np.ndarray) -> None:
    atomic_write_bytes(path, np.ascontiguousarray(array, dtype=DTYPE).tobytes())


def read_bin(path: Path, shape: tuple[int, ...], hint: str) -> np.ndarray:
    check_bin_size(path, shape, hint)
    return np.fromfile(path, dtype=DTYPE).reshape(shape)


MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "wav2vec2-pipeline/bin-dir/2"


def write_manifest(directory: Path, shapes: dict[str, list[int]], **facts: object) -> None:
    """Record what a dir of bins holds (bin name -> shape, in order); written last, so its presence
    means the stage finished."""
    atomic_write_json(
        directory / MANIFEST_FILE, {"format": MANIFEST_FORMAT, "dtype": "float32", "bins": shapes, **facts}
    )


def read_manifest(directory: Path) -> dict | None:
    """The dir's manifest, or None where a stage (or an older tool) wrote bins without one."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        return None
    manifest = read_json(path, "bin manifest", "the stage that wrote the bins")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise PipelineError(f"{path} is not a manifest of format {MANIFEST_FORMAT}; delete it and re-run the stage")
    return manifest


def remove_manifest(directory: Path) -> None:
    """Mark a dir as being rewritten, so an interrupted stage leaves no manifest behind."""
    (directory / MANIFEST_FILE).unlink(missing_ok=True)


def update_manifest(directory: Path, **facts: object) -> None:
    """Add facts (e.g. timings measured after the bins were written) to a finished dir's manifest."""
    manifest = read_manifest(directory)
    if manifest is None:
        raise PipelineError(f"{directory / MANIFEST_FILE} is missing; the stage did not finish")
    atomic_write_json(directory / MANIFEST_FILE, manifest | facts)

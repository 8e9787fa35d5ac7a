"""What produced a stage's outputs, so a re-run can tell complete, matching outputs from stale ones."""

import hashlib
import json
from pathlib import Path


def digest(obj: object) -> str:
    """A stable hash of JSON-able settings."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def stamp(paths: list[Path]) -> list[tuple[str, int, int]]:
    """Name, size and modification time of each file: cheap, and changes whenever a file is replaced."""
    return [(str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in sorted(paths)]

"""What produced an output: content digests (cached by stat), run keys, and a lock per output.

Inputs are identified by what they hold, not by when they were touched: a file copied, touched or restored
from a backup with the same bytes changes nothing downstream.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_json

_BLOCK_BYTES = 1 << 20


def digest(obj: object) -> str:
    """A stable hash of JSON-able settings: the run key of whatever they produce."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def bytes_sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK_BYTES), b""):
                sha.update(block)
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror or error}") from error
    return sha.hexdigest()


def _stamp(stat: os.stat_result) -> str:
    return f"{stat.st_size}:{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"


class DigestCache:
    """sha256 of files, remembered by resolved path with size, inode, and modification and change times in a
    JSON file, so that an unchanged file costs one stat; a touched file is read again, and only a change of
    content counts. The change time cannot be set back by `touch -r`, so an edit hidden that way is seen too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.changed = False
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.entries = {k: v for k, v in loaded.items() if isinstance(v, list) and len(v) == 2}

    def sha256(self, file: Path) -> str:
        key = str(file.resolve())
        try:
            stat = file.stat()
        except OSError as error:
            raise PipelineError(f"cannot read {file}: {error.strerror or error}") from error
        stamp, sha = self.entries.get(key, (None, None))
        if stamp != _stamp(stat):
            sha = file_sha256(file)
            self.entries[key] = [_stamp(stat), sha]
            self.changed = True
        return sha

    def absorb(self, other: Path) -> None:
        """Take the entries of another cache file (a shard worker's) that this one lacks."""
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(other.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                for key, value in loaded.items():
                    if isinstance(value, list) and len(value) == 2:
                        self.entries.setdefault(key, value)

    def remember(self, file: Path, sha: str) -> None:
        """The digest of bytes just written to `file`, so checking it later costs only a stat."""
        self.entries[str(file.resolve())] = [_stamp(file.stat()), sha]
        self.changed = True

    def save(self) -> None:
        if self.changed and self.path.parent.is_dir():
            atomic_write_json(self.path, self.entries)
            self.changed = False


@contextlib.contextmanager
def locked(lock_path: Path, what: str, shared: bool = False, wait: bool = False) -> Iterator[None]:
    """Hold a lock on `lock_path` while a run writes `what`: exclusive for a whole run, shared among the shard
    workers of one (each of which also holds its own shard's lock exclusively). A run that cannot have it is
    refused, naming the holder (or, with `wait`, waits for it). The kernel drops a lock when its holder exits,
    even killed: no stale lock."""
    handle = None
    try:
        handle = lock_path.open("a+")
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        try:  # a shared lock to be had means the holders are shard workers, not the run named in the file
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            holder = "shard workers (--shard); when all are done, --merge"
        except BlockingIOError:
            pass
        handle.close()
        raise PipelineError(
            f"{what} is being written by another run ({holder}); wait for it to finish, or write elsewhere"
        ) from None
    except OSError as error:
        if handle is not None:
            handle.close()
        raise PipelineError(f"cannot lock {lock_path}: {error.strerror or error}. Is the dir writable?") from error
    try:
        if not shared:
            handle.seek(0)
            handle.truncate()
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}: {' '.join(sys.argv)}\n")
            handle.flush()
        yield
    finally:
        handle.close()

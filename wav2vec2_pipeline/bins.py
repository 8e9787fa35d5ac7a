"""Dirs of `.bin` files and their records: the raw format, a completion record per bin, and the manifest.

A bin is raw little-endian float32 in C order, no header; its shape comes from its record. A dir of bins is
written by one run at a time (a lock), bin by bin: each finished bin gets a completion record saying what
produced it and the sha256 of what it holds, so an interrupted run resumes bin by bin and several workers can
complete disjoint bins of one run. The manifest, written last, is the one sign that the run finished.
"""

import argparse
import contextlib
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

import numpy as np

from wav2vec2_pipeline import records
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_bytes, make_dir
from wav2vec2_pipeline.provenance import DigestCache, bytes_sha256, locked

DTYPE = np.dtype("<f4")
_BIN_NAME = re.compile(r"^batch_(\d+)\.bin$")
MANIFEST_FILE = "manifest.json"
RECORDS_DIR = ".bins"
LOCK_FILE = ".lock"
RUN_FILE = "run.json"
DIGEST_CACHE = ".digests.json"


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


@dataclass(frozen=True)
class BinRecord:
    """One finished bin: what produced it (`key`) and what it holds (`sha256` of its bytes)."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/bin-record/1"
    PRODUCED_BY: ClassVar[str] = "the stage that wrote the bin"

    name: str
    shape: list[int]
    sha256: str
    key: str
    """Digest of everything that went into this bin (its audio or input bin, model, settings)."""
    rows_used: int
    """Rows holding speech; the rest are zero padding."""
    speech_samples: int
    """Speech the bin contributes to the transcripts: its rows' kept frames x samples per frame."""
    input_sha256: str | None = None
    """Logits only: the sha256 of the input bin they were computed from."""


@dataclass(frozen=True)
class RunStart:
    """Written when a run starts, so that an unfinished dir can say which run and how to finish it."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/run-start/1"
    PRODUCED_BY: ClassVar[str] = "the stage that writes the dir"

    run_key: str
    bins: dict[str, str]
    """Every bin of the run, with the key its completion record must carry."""
    command: str
    sharded: bool = False
    """Started by a --shard worker: what finishes the run is the missing shards, then --merge."""


@dataclass(frozen=True)
class InputManifest:
    """A finished preprocess run's input bins."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/input-bins/3"
    PRODUCED_BY: ClassVar[str] = "wav2vec2_preprocess.py"

    run_key: str
    batch_size: int
    bins: list[BinRecord]
    map_digest: str | None
    """The batch map's layout (batches.BatchMap.layout_digest); None for bins from elsewhere."""


@dataclass(frozen=True)
class StageMetrics:
    """The stage's own figures: all bins of the run, bin reads and writes included."""

    bins_run: int
    rows_run: int
    """Rows the model ran in this invocation (pad rows skipped where the backend allows)."""
    wall_s: float
    speech_s: float
    """Speech the rows run carry (kept frames x 20 ms)."""
    peak_rss_mib: float

    @property
    def samples_per_s(self) -> float | None:
        return self.rows_run / self.wall_s if self.rows_run else None

    @property
    def audio_s_per_s(self) -> float | None:
        """None for bins from elsewhere, whose speech is not known."""
        return self.speech_s / self.wall_s if self.rows_run and self.speech_s else None


@dataclass(frozen=True)
class Throughput:
    """The reference's figure: one batch resident on the device, warm-up, timed runs each synchronised."""

    shape: list[int]
    warmup_runs: int
    run_s: list[float]
    threads: int | None = None
    """--threads of the run that measured it (None: the library's default)."""

    @property
    def samples_per_s(self) -> float:
        return len(self.run_s) * self.shape[0] / sum(self.run_s)

    @property
    def median_run_ms(self) -> float:
        return 1000 * statistics.median(self.run_s)


@dataclass(frozen=True)
class LogitsManifest:
    """A finished compile.py run's logits bins, tied to the model and input bins that produced them."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/logits-bins/3"
    PRODUCED_BY: ClassVar[str] = "compile.py"

    run_key: str
    batch_size: int
    input_run_key: str
    """The input manifest's run key: which preprocess run the input bins came from."""
    model_sha256: str
    backend: str
    backend_options: list[str] | None
    """What else, beyond the backend's name, shapes the logits (torch_aie's SoC and precision)."""
    map_digest: str | None
    """Copied from the input manifest: ties the logits to the batch map's rows."""
    vocab: list[str] | None
    """The model's vocabulary, where traced.pth's export record gives it."""
    bins: list[BinRecord]
    stage: StageMetrics
    throughput: Throughput | None = None


@dataclass(frozen=True)
class Shard:
    """One of N workers of a run: bin i (0-based, in plan order) is shard (i mod N) + 1's, round-robin, since
    bucketed bins are sorted by length. Planning is global, so every worker sees the same bins."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise PipelineError(f"--shard {self.index}/{self.count}: K/N needs 1 <= K <= N")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"(\d+)/(\d+)", text, re.ASCII)
        if match is None:
            raise PipelineError(f"--shard {text!r}: expected K/N, e.g. 2/4 for the second of four workers")
        return cls(int(match.group(1)), int(match.group(2)))

    def owns(self, position: int) -> bool:
        return position % self.count == self.index - 1

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    """--shard and --merge, the same on every stage that writes bins."""
    parser.add_argument("--shard", metavar="K/N", type=Shard.parse,
                        help="write only the K-th of N workers' bins (bin i is shard i mod N + 1's)")  # fmt: skip
    parser.add_argument("--merge", action="store_true",
                        help="after all N --shard runs: check each finished, then write the manifest")  # fmt: skip


def check_shard_options(shard: Shard | None, merge: bool, overwrite: bool) -> None:
    if shard is not None and merge:
        raise PipelineError("--shard and --merge go in separate runs: the shards first, then one --merge")
    if merge and overwrite:
        raise PipelineError("--merge writes no bin, so --overwrite means nothing there: pass it to the --shard runs")


@dataclass(frozen=True)
class ShardRecord:
    """Written by a shard worker when it has finished all its bins: what --merge checks before the manifest."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/shard/1"
    PRODUCED_BY: ClassVar[str] = "a --shard run"

    run_key: str
    index: int
    count: int
    bins: list[str]
    stage: StageMetrics | None
    """compile.py's figures for this shard's bins."""


M = TypeVar("M", InputManifest, LogitsManifest)
MANIFEST_TYPES = (InputManifest, LogitsManifest)


class RunDir(Generic[M]):
    """A dir of bins as one run writes it: lock, per-bin completion records, and the manifest last."""

    def __init__(self, path: Path, manifest_type: type[M], shard: Shard | None = None) -> None:
        self.path = path
        self.manifest_type = manifest_type
        self.records_dir = path / RECORDS_DIR
        self.cache = DigestCache(path / (DIGEST_CACHE if shard is None else f".digests-{shard.name}.json"))
        """Digests of the bins (and of any input a stage hashes), so a bin is checked by content for a stat; a
        shard worker keeps its own, and every run also reads the shards' (entries hold only while a file's
        stat is unchanged, so another worker's are as safe as one's own)."""
        for shard_cache in sorted(path.glob(".digests-shard-*.json")):
            self.cache.absorb(shard_cache)

    @contextlib.contextmanager
    def lock(self, shard: Shard | None = None) -> Iterator[None]:
        """The whole dir for one run; or, for a shard worker, the dir shared with the other shards of its run
        and its own shard exclusively. A dir holding what this pipeline did not write is refused first."""
        self.check_claimable()
        make_dir(self.path)
        with contextlib.ExitStack() as stack:
            stack.enter_context(locked(self.path / LOCK_FILE, str(self.path), shared=shard is not None))
            if shard is not None:
                stack.enter_context(locked(self.path / f".lock-{shard.name}", f"{self.path} ({shard.name})"))
            yield

    def check_claimable(self) -> None:
        """Refuse to write into a dir holding another stage's (or anyone's) manifest.json, or bins that no run
        of this pipeline started there: they are someone's data, not stale outputs to replace."""
        if not self.path.is_dir():
            return
        self.manifest()
        strays = [p.name for p in list_bins(self.path)] if not self.records_dir.is_dir() else []
        if strays:
            raise PipelineError(
                f"{self.path} holds {len(strays)} bin(s) that no run of this pipeline wrote (e.g. {strays[0]}): "
                "write into an empty or new dir, or remove them"
            )

    def manifest(self) -> M | None:
        """The finished run's manifest; None where no run finished here."""
        path = self.path / MANIFEST_FILE
        if not path.is_file():
            return None
        others = tuple(t for t in MANIFEST_TYPES if t is not self.manifest_type)
        return records.load(self.manifest_type, path, others)

    def require_manifest(self) -> M:
        """The manifest, or an error saying whether a run is unfinished here (and how to finish it)."""
        manifest = self.manifest()
        if manifest is not None:
            return manifest
        producer = self.manifest_type.PRODUCED_BY
        start = self.run_start()
        if start is not None:
            done = sum(self.done(name, key) is not None for name, key in start.bins.items())
            how = (
                "finish it by running any --shard of it that has not finished, then the same command with --merge "
                f"instead of --shard: {start.command}"
                if start.sharded
                else f"finish it by running the same command again: {start.command}"
            )
            raise PipelineError(
                f"the {producer} run into {self.path} did not finish ({done} of {len(start.bins)} bins done); {how}"
            )
        if not self.path.is_dir():
            raise PipelineError(f"{self.path} is not a dir. Pass the dir that {producer} wrote.")
        raise PipelineError(f"{self.path} has no {MANIFEST_FILE}: it was not written by {producer}. Run it first.")

    def run_start(self) -> RunStart | None:
        with contextlib.suppress(PipelineError):
            return records.load(RunStart, self.records_dir / RUN_FILE)
        return None

    def begin(self, run_key: str, keys: dict[str, str], command: str, shard: Shard | None = None) -> None:
        """Mark the dir as being written by the run that will make these bins (name -> key): no manifest
        until it finishes."""
        (self.path / MANIFEST_FILE).unlink(missing_ok=True)
        make_dir(self.records_dir)
        records.save(self.records_dir / RUN_FILE, RunStart(run_key, keys, command, shard is not None))

    def holds(self, record: BinRecord) -> bool:
        """Whether the bin still holds what its record says (size, then content: a swapped or edited bin is not)."""
        path = self.path / record.name
        return is_whole(path, record.shape) and self.cache.sha256(path) == record.sha256

    def done(self, name: str, key: str) -> BinRecord | None:
        """The bin's record, if a run finished this bin from the same inputs (`key`) and it still holds that."""
        with contextlib.suppress(PipelineError):
            record = records.load(BinRecord, self.records_dir / f"{name}.json")
            if record.key == key and record.name == name and self.holds(record):
                return record
        return None

    def put(self, name: str, array: np.ndarray, **facts: object) -> BinRecord:
        """Write a bin, then its completion record (so a bin without one is never taken as finished)."""
        data = np.ascontiguousarray(array, dtype=DTYPE).tobytes()
        atomic_write_bytes(self.path / name, data)
        record = BinRecord(name=name, shape=list(array.shape), sha256=bytes_sha256(data), **facts)
        self.cache.remember(self.path / name, record.sha256)
        records.save(self.records_dir / f"{name}.json", record)
        return record

    def missing_bin(self, name: str, position: int, shards: list[ShardRecord]) -> PipelineError:
        """The error for a bin a merge cannot vouch for, naming the shard that should have made it."""
        count = shards[0].count
        owner = Shard(position % count + 1, count)
        return PipelineError(
            f"{self.path / name} is missing, cut short or changed since shard {owner.index}/{count} finished it: "
            f"run --shard {owner.index}/{count} again, then --merge"
        )

    def finish_shard(self, record: ShardRecord) -> None:
        self.cache.save()
        records.save(self.records_dir / f"shard-{record.index}-of-{record.count}.json", record)

    def shard_record(self, shard: Shard, run_key: str) -> ShardRecord | None:
        """This shard's record of the run, where it finished before."""
        with contextlib.suppress(PipelineError):
            record = records.load(ShardRecord, self.records_dir / f"{shard.name}.json")
            if record.run_key == run_key:
                return record
        return None

    def finished_shards(self, run_key: str, settings: str = "") -> list[ShardRecord]:
        """The shard records of the run `run_key`, checked: all N there, one N, no other run's."""
        found: list[ShardRecord] = []
        foreign: list[str] = []
        for path in sorted(self.records_dir.glob("shard-*-of-*.json")):
            try:
                record = records.load(ShardRecord, path)
            except PipelineError:
                foreign.append(path.name)
                continue
            if record.run_key == run_key:
                found.append(record)
            else:
                foreign.append(path.name)
        if not found:
            others = f" (shard records of other runs: {', '.join(foreign)})" if foreign else ""
            raise PipelineError(
                f"no --shard run of these inputs and settings{f' ({settings})' if settings else ''} has finished into "
                f"{self.path}{others}: run the shards with the same options first"
            )
        by_count: dict[int, list[ShardRecord]] = {}
        for record in found:
            by_count.setdefault(record.count, []).append(record)
        complete = [group for count, group in by_count.items() if {r.index for r in group} == set(range(1, count + 1))]
        if not complete:  # name what is missing from the split that got furthest
            group = max(by_count.values(), key=len)
            count = group[0].count
            missing = sorted(set(range(1, count + 1)) - {record.index for record in group})
            raise PipelineError(
                f"shard {missing[0]}/{count} of this run has not finished into {self.path} ({len(missing)} of {count} "
                f"missing): run it with --shard {missing[0]}/{count}, then --merge again"
            )
        found = complete[-1] if len(complete) == 1 else max(complete, key=len)
        return sorted(found, key=lambda record: record.index)

    def finish(self, manifest: M) -> None:
        """Remove what no longer belongs to the run (bins of a longer earlier run), then write the manifest."""
        keep = {record.name for record in manifest.bins}
        for stale in list_bins(self.path):
            if stale.name not in keep:
                stale.unlink()
                (self.records_dir / f"{stale.name}.json").unlink(missing_ok=True)
        self.update(manifest)

    def update(self, manifest: M) -> None:
        """Rewrite a finished run's manifest, e.g. with figures measured after its bins were written."""
        self.cache.save()
        records.save(self.path / MANIFEST_FILE, manifest)

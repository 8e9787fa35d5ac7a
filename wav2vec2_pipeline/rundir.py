"""A dir of bins as one run writes it: a lock, a completion record per bin, and the manifest last.

A dir of bins is written by one run at a time (a lock), bin by bin: each finished bin gets a completion record
saying what produced it and the sha256 of what it holds, so an interrupted run resumes bin by bin and several
workers can complete disjoint bins of one run. The manifest, written last, is the one sign that the run finished.
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from wav2vec2_pipeline import records
from wav2vec2_pipeline.binfile import DTYPE, is_whole, list_bins
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_bytes, make_dir
from wav2vec2_pipeline.manifests import BinRecord, InputManifest, LogitsManifest, RunStart, ShardRecord
from wav2vec2_pipeline.provenance import DigestCache, bytes_sha256, locked
from wav2vec2_pipeline.shards import Shard

MANIFEST_FILE = "manifest.json"
RECORDS_DIR = ".bins"
LOCK_FILE = ".lock"
RUN_FILE = "run.json"
DIGEST_CACHE = ".digests.json"
M = TypeVar("M", InputManifest, LogitsManifest)
MANIFEST_TYPES = (InputManifest, LogitsManifest)


class RunDir(Generic[M]):
    """A dir of bins as one run writes it: lock, per-bin completion records, and the manifest last."""

    def __init__(self, path: Path, manifest_type: type[M], shard: Shard | None = None) -> None:
        self.path = path
        self.manifest_type = manifest_type
        self.shard = shard
        """The worker of a sharded run that writes here; None: the whole run (or its merge)."""
        self.records_dir = path / RECORDS_DIR
        self.cache = DigestCache(path / (DIGEST_CACHE if shard is None else f".digests-{shard.name}.json"))
        """Digests of the bins (and of any input a stage hashes), so a bin is checked by content for a stat; a
        shard worker keeps its own, and every run also reads the shards' (entries hold only while a file's
        stat is unchanged, so another worker's are as safe as one's own)."""
        for shard_cache in sorted(path.glob(".digests-shard-*.json")):
            self.cache.absorb(shard_cache)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The whole dir for one run; or, for a shard worker, the dir shared with the other shards of its run
        and its own shard exclusively. A dir holding what this pipeline did not write is refused first."""
        self.check_claimable()
        make_dir(self.path)
        with contextlib.ExitStack() as stack:
            stack.enter_context(locked(self.path / LOCK_FILE, str(self.path), shared=self.shard is not None))
            if self.shard is not None:
                name = self.shard.name
                stack.enter_context(locked(self.path / f".lock-{name}", f"{self.path} ({name})"))
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

    def begin(
        self, run_key: str, keys: dict[str, str], command: str, *, shards: int | None = None, restart: bool = False
    ) -> None:
        """Mark the dir as being written by the run that will make these bins (name -> key): no manifest until it
        finishes. The split is a fact of the run: a shard worker that splits it otherwise than workers still
        writing it is refused here, when it starts (once they have all finished, a new split may run it again)."""
        count = self.shard.count if self.shard is not None else shards
        start = self.run_start()
        if (self.shard is not None and not restart and start is not None and start.run_key == run_key
                and start.shards not in (None, count) and not self.split_finished(run_key, start.shards)):  # fmt: skip
            raise PipelineError(
                f"{self.path} is being written by {start.shards} shard workers of this run (started as: "
                f"{start.command}); this worker says --shard {self.shard}: pass --shard K/{start.shards} as they "
                "do, or --overwrite to start the run over with this split"
            )
        (self.path / MANIFEST_FILE).unlink(missing_ok=True)
        make_dir(self.records_dir)
        records.save(self.records_dir / RUN_FILE, RunStart(run_key, keys, command, self.shard is not None, count))

    def split_finished(self, run_key: str, count: int) -> bool:
        """Whether every one of `count` shard workers of the run finished its bins here."""
        finished = set()
        for index in range(1, count + 1):
            with contextlib.suppress(PipelineError):
                record = records.load(ShardRecord, self.records_dir / f"{Shard(index, count).name}.json")
                if record.run_key == run_key:
                    finished.add(index)
        return len(finished) == count

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

    def shard_record(self, run_key: str) -> ShardRecord | None:
        """This worker's shard record of the run, where it finished before."""
        assert self.shard is not None, "a shard worker's dir"
        with contextlib.suppress(PipelineError):
            record = records.load(ShardRecord, self.records_dir / f"{self.shard.name}.json")
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

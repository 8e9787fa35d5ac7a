"""The loop every stage that writes bins runs: what is done already, run the rest, record each, and the three
ways a run ends (a plain run's manifest, a shard's record, a merge of the shards' bins).

Who makes a bin (preprocess from audio, compile.py on a local backend, the Ray driver on a cluster) is the
caller's `make`; plain, sharded and merged runs differ in which bins they own and how they finish, not in flags
through one function."""

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tqdm import tqdm

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.manifests import BinRecord, ShardRecord, StageMetrics
from wav2vec2_pipeline.resources import peak_rss_mib
from wav2vec2_pipeline.rundir import RunDir
from wav2vec2_pipeline.shards import Shard


def owned(keys: dict[str, str], shard: Shard | None) -> dict[str, str]:
    """The bins (name -> key, in plan order) that `shard` writes: all of them for a whole run."""
    return {name: key for i, (name, key) in enumerate(keys.items()) if shard is None or shard.owns(i)}


@dataclass
class Tally:
    """What the model or the writer ran in this invocation, for the stage's figures."""

    rows: int = 0
    speech_samples: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.perf_counter()

    def stage(self, bins: int, sample_rate: int) -> StageMetrics:
        return StageMetrics(bins, self.rows, time.perf_counter() - self.started, self.speech_samples / sample_rate,
                            peak_rss_mib())  # fmt: skip


def complete(
    run_dir: RunDir,
    keys: dict[str, str],
    make: Callable[[list[str]], Iterable[BinRecord]],
    *,
    overwrite: bool,
    desc: str,
) -> list[BinRecord]:
    """Every bin of `keys` (name -> key of what makes it; "" where that is not known before it is made), in
    order: those a run finished earlier from the same key as they are, the others made by `make` (in any order,
    each written and recorded by it as it comes)."""
    finished = {} if overwrite else {n: r for n, k in keys.items() if k and (r := run_dir.done(n, k)) is not None}
    todo = [name for name in keys if name not in finished]
    for record in tqdm(make(todo), total=len(todo), desc=desc, disable=None):
        finished[record.name] = record
    lost = [name for name in keys if name not in finished]
    if lost:  # a runner elsewhere may lose some quietly: no manifest may name them
        raise PipelineError(
            f"{len(lost)} bin(s) never came back from where they ran (e.g. {lost[0]}); the bins finished so far are "
            "kept: run the same command again to run the rest"
        )
    return [finished[name] for name in keys]


def merge_bins(run_dir: RunDir, keys: dict[str, str], shards: list[ShardRecord]) -> list[BinRecord]:
    """Every bin of the run as its shard finished it, or an error naming the shard to run again."""
    done = []
    for position, (name, key) in enumerate(keys.items()):
        record = run_dir.done(name, key)
        if record is None:
            raise run_dir.missing_bin(name, position, shards)
        done.append(record)
    return done


def finish_shard(
    run_dir: RunDir, run_key: str, bins: list[BinRecord], stage: StageMetrics | None
) -> StageMetrics | None:
    """A shard worker's end: its record, which --merge checks. Where it ran nothing, its earlier figures stand."""
    shard = run_dir.shard
    assert shard is not None, "a shard worker's dir"
    earlier = run_dir.shard_record(run_key)
    if stage is not None:
        stage = standing_figures(stage, earlier.stage if earlier is not None else None)
    run_dir.finish_shard(ShardRecord(run_key, shard.index, shard.count, [r.name for r in bins], stage))
    return stage


def merged_stage(shards: list[StageMetrics]) -> StageMetrics:
    """The shards' figures as one run's: work summed, wall time the longest shard's (they ran side by side)."""
    return StageMetrics(
        bins_run=sum(s.bins_run for s in shards), rows_run=sum(s.rows_run for s in shards),
        wall_s=max(s.wall_s for s in shards), speech_s=sum(s.speech_s for s in shards),
        peak_rss_mib=max(s.peak_rss_mib for s in shards),
    )  # fmt: skip


def standing_figures(stage: StageMetrics, earlier: StageMetrics | None) -> StageMetrics:
    """A run that ran nothing (every bin finished earlier) keeps the figures of the run that did the work."""
    return earlier if stage.rows_run == 0 and earlier is not None else stage


@contextlib.contextmanager
def writing(run_dir: RunDir, run_key: str, keys: dict[str, str], command: str, *, shards: int | None = None,
            restart: bool = False) -> Iterator[None]:  # fmt: skip
    """The dir locked and marked as being written by this run, for the length of the block."""
    with run_dir.lock():
        run_dir.begin(run_key, keys, command, shards=shards, restart=restart)
        yield

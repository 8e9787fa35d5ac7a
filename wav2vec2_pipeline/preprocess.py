"""Stage 1: a LibriSpeech split -> float32 input bins, the batch map and the ground truth.

Bins are written one by one with a completion record each, keyed by the content of the audio in them and the
settings that shape them: a re-run (after an interruption, or after one file changed) rewrites only the bins
whose inputs changed, and a file that was only touched changes nothing.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wav2vec2_pipeline.audioplan import (
    BinPlan,
    Inputs,
    PreprocessOptions,
    audio_loader,
    bin_speech,
    check_paths,
    identify_inputs,
    plan_inputs,
    up_to_date,
    write_map_and_truth,
)
from wav2vec2_pipeline.batchmap import BatchMap, MapBin
from wav2vec2_pipeline.binrows import make_batch
from wav2vec2_pipeline.manifests import BinRecord, InputManifest
from wav2vec2_pipeline.rundir import RunDir
from wav2vec2_pipeline.runloop import complete, finish_shard, merge_bins, owned, writing
from wav2vec2_pipeline.shards import Shard, Split


@dataclass(frozen=True)
class PreprocessResult:
    bins_written: int
    bins: int
    """Of this run: all of them, or one shard's."""
    batch_map: BatchMap | None
    """None for a shard: the merge writes the map."""
    map_file: Path | None
    ground_truth_file: Path | None


def _planned(
    source: Path, output_dir: Path, data_path: Path, options: PreprocessOptions, shard: Shard | None = None
) -> tuple[RunDir, Inputs, BinPlan] | None:
    """The bins' dir, the inputs known by content and the bins they make; None where a finished run from the
    same inputs and settings is there already (an unchanged file costs one stat)."""
    check_paths(source, output_dir, data_path)
    run_dir = RunDir(output_dir, InputManifest, shard)
    inputs = identify_inputs(source, options, run_dir.cache)
    if not options.overwrite and up_to_date(run_dir, data_path, options.batch_size, inputs.run_key,
                                            inputs.truth_sha, inputs.audio_paths):  # fmt: skip
        run_dir.cache.save()  # touched files: their digests stand for their new times
        return None
    return run_dir, inputs, plan_inputs(source, inputs, options)


def _bin_writer(
    run_dir: RunDir, bins: BinPlan, options: PreprocessOptions, loader: Callable[[str], np.ndarray]
) -> Callable[[list[str]], Iterator[BinRecord]]:
    """runloop.complete's `make` for input bins: each made from its audio as the plan lays it out."""
    by_name = dict(zip(bins.keys, bins.plan.bins, strict=True))

    def make(names: list[str]) -> Iterator[BinRecord]:
        for name in names:
            bin_ = by_name[name]
            batch = make_batch(bin_, loader)
            yield run_dir.put(name, batch, key=bins.keys[name], rows_used=len(bin_.rows),
                              speech_samples=bin_speech(bin_, options.layout))  # fmt: skip

    return make


def _finish(
    run_dir: RunDir, data_path: Path, inputs: Inputs, bins: BinPlan, done: list[BinRecord], options: PreprocessOptions
) -> tuple[BatchMap, Path, Path]:
    """The ground truth and the batch map, then the manifest: the one sign that the run finished."""
    map_bins = [MapBin(r.name, b.samples, r.sha256, b.rows, b.height)
                for r, b in zip(done, bins.plan.bins, strict=True)]  # fmt: skip
    batch_map, map_file, ground_truth_file = write_map_and_truth(data_path, inputs, bins, map_bins, options)
    run_dir.finish(InputManifest(run_key=inputs.run_key, batch_size=options.batch_size, bins=done,
                                 map_digest=batch_map.layout_digest))  # fmt: skip
    return batch_map, map_file, ground_truth_file


def _loader(inputs: Inputs, bins: BinPlan, options: PreprocessOptions) -> Callable[[str], np.ndarray]:
    by_id = {u.utt_id: u for u in inputs.utterances}
    return audio_loader(by_id, bins.lengths, options.model_dir, options.conversion)


def preprocess(
    source: Path, output_dir: Path, data_path: Path, options: PreprocessOptions, command: str
) -> PreprocessResult | None:
    """Write the bins, the ground truth and the map, then the manifest. Returns None, writing nothing, where
    a finished run from the same inputs and settings is already there. `source`: a LibriSpeech split, a JSONL
    manifest or a folder of audio."""
    planned = _planned(source, output_dir, data_path, options)
    if planned is None:
        return None
    run_dir, inputs, bins = planned
    make = _bin_writer(run_dir, bins, options, _loader(inputs, bins, options))
    with writing(run_dir, inputs.run_key, bins.keys, command):  # nothing is written before every check
        written = _Counted(make)
        records = complete(run_dir, bins.keys, written, overwrite=options.overwrite, desc="writing bins")
        batch_map, map_file, ground_truth_file = _finish(run_dir, data_path, inputs, bins, records, options)
    return PreprocessResult(written.count, len(records), batch_map, map_file, ground_truth_file)


def preprocess_shard(
    source: Path, output_dir: Path, data_path: Path, options: PreprocessOptions, command: str, shard: Shard
) -> PreprocessResult | None:
    """One worker's bins (bin i is shard i mod N + 1's) and its shard record: no map, no manifest."""
    planned = _planned(source, output_dir, data_path, options, shard)
    if planned is None:
        return None
    run_dir, inputs, bins = planned
    make = _bin_writer(run_dir, bins, options, _loader(inputs, bins, options))
    with writing(run_dir, inputs.run_key, bins.keys, command, restart=options.overwrite):
        written = _Counted(make)
        records = complete(run_dir, owned(bins.keys, shard), written, overwrite=options.overwrite,
                           desc="writing bins")  # fmt: skip
        finish_shard(run_dir, inputs.run_key, records, None)
    return PreprocessResult(written.count, len(records), None, None, None)


def merge_preprocess(
    source: Path, output_dir: Path, data_path: Path, options: PreprocessOptions, command: str
) -> PreprocessResult | None:
    """Write no bin: check that every shard of the run finished its bins, then write the map and the manifest."""
    planned = _planned(source, output_dir, data_path, options)
    if planned is None:
        return None
    run_dir, inputs, bins = planned
    shards = run_dir.finished_shards(inputs.run_key)
    with writing(run_dir, inputs.run_key, bins.keys, command, shards=shards[0].count):
        records = merge_bins(run_dir, bins.keys, shards)
        batch_map, map_file, ground_truth_file = _finish(run_dir, data_path, inputs, bins, records, options)
    return PreprocessResult(0, len(records), batch_map, map_file, ground_truth_file)


def run_preprocess(
    source: Path,
    output_dir: Path,
    data_path: Path,
    options: PreprocessOptions,
    command: str,
    split: Split | None = None,
) -> PreprocessResult | None:
    """wav2vec2_preprocess.py in memory: the whole run, `split.shard`'s bins, or the merge of the shards' bins."""
    split = split or Split()
    split.check(options.overwrite)
    where = (source, output_dir, data_path, options, command)
    if split.shard is not None:
        return preprocess_shard(*where, split.shard)
    return merge_preprocess(*where) if split.merge else preprocess(*where)


@dataclass
class _Counted:
    """A `make` that counts the bins it made."""

    make: Callable[[list[str]], Iterable[BinRecord]]
    count: int = 0

    def __call__(self, names: list[str]) -> Iterator[BinRecord]:
        for record in self.make(names):
            self.count += 1
            yield record



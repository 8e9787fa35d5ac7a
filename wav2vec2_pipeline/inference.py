"""Stage 3: run every input bin through a backend, write logits bins, and time it two ways.

Each logits bin gets a completion record holding the sha256 of the input bin it was computed from and the key
of the model and backend, so a re-run redoes exactly the bins whose input or model changed, and postprocess
can refuse logits that no longer belong to the batch map's inputs. A run is planned (`plan_compile`), then run
whole (`compile_bins`, here or on a cluster's runner), as one shard (`compile_shard`) or merged from its shards
(`merge_shards`). Nothing here imports torch until a backend is created.
"""

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from wav2vec2_pipeline import calibration
from wav2vec2_pipeline.binfile import as_array, is_whole, list_bins, nbytes, read_bytes, shape_text
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.errors import PipelineError, require
from wav2vec2_pipeline.logits import BinRunner, LocalRunner, LogitsPlan, largest_first, logits_maker, traced_model
from wav2vec2_pipeline.manifests import (
    BinRecord,
    InputManifest,
    LogitsManifest,
    StageMetrics,
    Throughput,
    changed_input_bin,
)
from wav2vec2_pipeline.model import MAX_SAMPLES, SAMPLE_RATE
from wav2vec2_pipeline.options import group, option
from wav2vec2_pipeline.provenance import digest, file_sha256
from wav2vec2_pipeline.registry import AUTO, BACKENDS
from wav2vec2_pipeline.resources import check_fits, peak_rss_mib
from wav2vec2_pipeline.rundir import DIGEST_CACHE, RunDir
from wav2vec2_pipeline.runloop import (
    Tally,
    complete,
    finish_shard,
    merge_bins,
    merged_stage,
    owned,
    standing_figures,
    writing,
)
from wav2vec2_pipeline.shards import Shard, Split

if TYPE_CHECKING:
    from wav2vec2_pipeline.backends import Backend

MAX_RUNS = 100_000
"""Warm-up or timed runs beyond this are a typo, not a measurement (each takes a second on a CPU)."""
MAX_STATIC_SHAPES = 16
"""A static-shape backend compiles per shape (minutes each on an NPU): more shapes than this is a layout mistake."""


@dataclass(frozen=True, kw_only=True)
class CompileOptions:
    """compile.py's options, checked when built, before any bin is read or the model loaded."""

    batch_size: int = option(help="rows per bin, as preprocess wrote them")
    backend: str = option(AUTO, "auto: aie, else cuda, else the fastest CPU path as accurate as fp32",
                          choices=BACKENDS.choices)  # fmt: skip
    warmup_runs: int = option(10, "runs before the timed ones of the throughput figure")
    timed_runs: int = option(100, "timed runs of the throughput figure (their mean)")
    max_samples: int = option(MAX_SAMPLES, "input length, used only where the input dir has no manifest.json")
    overwrite: bool = option(False, "redo every bin even where complete outputs exist")
    device: DeviceOptions = group(DeviceOptions)

    def __post_init__(self) -> None:
        require((
            (self.batch_size >= 1, f"--batch_size must be at least 1, got {self.batch_size}"),
            (0 <= self.warmup_runs <= MAX_RUNS, f"--warmup_runs must be between 0 and {MAX_RUNS}, got "
                                                f"{self.warmup_runs}"),
            (1 <= self.timed_runs <= MAX_RUNS, f"--timed_runs must be between 1 and {MAX_RUNS} (the figure is "
                                               f"their mean), got {self.timed_runs}"),
            (self.max_samples >= 1, f"--max_samples must be positive, got {self.max_samples}"),
        ))  # fmt: skip
        BACKENDS.check(self.backend)


@dataclass(frozen=True)
class InputBins:
    run_key: str
    batch_size: int
    bins: list[BinRecord]
    """In order, with shapes, digests and the speech each holds."""
    map_digest: str | None


def find_input_bins(input_dir: Path, batch_size: int, max_samples: int) -> InputBins:
    """The bins to run, each checked for size before anything runs, so a bad one stops the stage early.
    Bins from elsewhere (no manifest, no unfinished preprocess run) are taken in name order and hashed."""
    run_dir = RunDir(input_dir, InputManifest)
    if not input_dir.is_dir():
        kind = "is a file" if input_dir.exists() else "does not exist"
        raise PipelineError(f"--input_path {input_dir} {kind}: pass the dir wav2vec2_preprocess.py wrote")
    manifest = run_dir.manifest()
    if manifest is None and run_dir.run_start() is not None:
        run_dir.require_manifest()  # says which preprocess run is unfinished, and how to finish it
    if manifest is None:
        shape = [batch_size, max_samples]
        found = [BinRecord(p.name, shape, file_sha256(p) if is_whole(p, shape) else "", "", batch_size, 0)
                 for p in list_bins(input_dir)]  # fmt: skip
        run_key = digest({"bins": [b.sha256 for b in found], "shape": shape})  # the same bytes at another shape differ
        manifest = InputManifest(run_key=run_key, batch_size=batch_size, bins=found, map_digest=None)
    if manifest.batch_size != batch_size:
        raise PipelineError(
            f"bins in {input_dir} were written with --batch_size {manifest.batch_size}; you passed {batch_size}. "
            f"Pass --batch_size {manifest.batch_size} or preprocess again with --batch_size {batch_size}."
        )
    if not manifest.bins:
        raise PipelineError(f"no batch_<i>.bin files in {input_dir}: run wav2vec2_preprocess.py first")
    for record in manifest.bins:
        path = input_dir / record.name
        if not is_whole(path, record.shape):
            size = f"has {path.stat().st_size} bytes" if path.is_file() else "is missing"
            raise PipelineError(
                f"{record.name} {size}; expected {shape_text(record.shape)} float32 = {nbytes(record.shape)}. "
                f"Was it written with --batch_size {batch_size} and rows of {record.shape[1]} samples? "
                "Re-run preprocess."
            )
    return InputBins(manifest.run_key, batch_size, manifest.bins, manifest.map_digest)


def measure_throughput(backend: "Backend", batch: np.ndarray, warmup_runs: int, timed_runs: int) -> Throughput:
    """The reference's method: one batch resident on the device, warm-up, then timed runs each
    ended by a synchronize; host-device copies are outside the timed region."""
    resident = backend.to_device(batch)
    for _ in range(warmup_runs):
        backend.forward(resident)
        backend.synchronize()
    run_s = []
    for _ in tqdm(range(timed_runs), desc="timed runs", disable=None):
        start = time.perf_counter()
        backend.forward(resident)
        backend.synchronize()
        run_s.append(time.perf_counter() - start)
    return Throughput(list(batch.shape), warmup_runs, run_s)


def check_paths(input_dir: Path, output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise PipelineError(f"--output_path {output_dir} is a file; pass a dir for the logits bins")
    inside, outside = output_dir.resolve(), input_dir.resolve()
    if inside == outside or inside.is_relative_to(outside) or outside.is_relative_to(inside):
        raise PipelineError(
            f"--output_path {output_dir} and --input_path {input_dir} overlap; write the logits to a dir of their own"
        )


@dataclass(frozen=True)
class CompileRun:
    """A planned compile.py run: its input bins, the backend that runs them (built, not loaded), and what the
    logits are keyed by. Nothing is written until one of the entry points below runs it."""

    input_dir: Path
    output_dir: Path
    torchscript_path: Path
    inputs: InputBins
    backend: "Backend"
    plan: LogitsPlan

    @property
    def sources(self) -> dict[str, BinRecord]:
        return {b.name: b for b in self.inputs.bins}

    @property
    def keys(self) -> dict[str, str]:
        return {b.name: self.plan.key(b, b.sha256) for b in self.inputs.bins}


def plan_compile(input_dir: Path, output_dir: Path, torchscript_path: Path, options: CompileOptions) -> CompileRun:
    """Everything checked and keyed before any dir is made: paths, bins, memory, the backend (calibrated on the
    run's own speech where it quantises), and its shapes."""
    from wav2vec2_pipeline.backends import create_backend

    check_paths(input_dir, output_dir)
    inputs = find_input_bins(input_dir, options.batch_size, options.max_samples)
    model = traced_model(torchscript_path)
    rows, samples = max(((r.rows_used or r.shape[0], r.shape[1]) for r in inputs.bins), key=lambda s: s[0] * s[1])
    check_fits(model.geometry.least_bytes(rows, samples), f"a batch of {rows} x {samples} samples",
               "Preprocess with a smaller --batch_size (or --bin_samples).")  # fmt: skip
    backend = create_backend(options.backend, options.device,
                             lambda: calibration.of_input_bins(input_dir, inputs.bins, inputs.batch_size))  # fmt: skip
    shapes = {tuple(b.shape) for b in inputs.bins}
    if backend.static_shapes and len(shapes) > MAX_STATIC_SHAPES:
        raise PipelineError(
            f"--backend {backend.name} compiles one model per input shape, and the bins in {input_dir} have "
            f"{len(shapes)} (the default --layout whole): preprocess with --layout bucket (a few lengths)"
        )
    plan = LogitsPlan(model, backend.name, backend.key_options(), backend.static_shapes, inputs.run_key,
                      inputs.batch_size, inputs.map_digest)  # fmt: skip
    return CompileRun(input_dir, output_dir, torchscript_path, inputs, backend, plan)


@dataclass(frozen=True)
class CompileResult:
    manifest: LogitsManifest | None
    """None for a shard: the merge writes it."""
    up_to_date: bool
    """Nothing was run: a finished run of the same model, inputs and backend was there, figures and all."""
    stage: StageMetrics


def _logits_dir(run: CompileRun, keys: dict[str, str], shard: Shard | None = None) -> RunDir:
    """The logits dir, knowing the input bins' digests from preprocess (checking them then costs a stat), with
    the bins this worker runs checked to hold what their manifest says."""
    run_dir = RunDir(run.output_dir, LogitsManifest, shard)
    for preprocess_cache in (run.input_dir / DIGEST_CACHE, *run.input_dir.glob(".digests-shard-*.json")):
        run_dir.cache.absorb(preprocess_cache)
    sources = run.sources
    changed = [name for name in tqdm(keys, desc="checking input bins", disable=None)
               if sources[name].sha256 and run_dir.cache.sha256(run.input_dir / name) != sources[name].sha256]
    if changed:
        when = f"since preprocess wrote it; {len(changed)} such bin(s)"
        raise changed_input_bin(str(run.input_dir / changed[0]), when)
    return run_dir


def _finished(run: CompileRun, run_dir: RunDir) -> tuple[LogitsManifest | None, bool]:
    """The manifest an earlier run of the same model, inputs and backend left here, and whether every one of its
    bins still holds what it says (the run is then finished)."""
    earlier = run_dir.manifest() if run.output_dir.is_dir() else None
    if earlier is None or earlier.run_key != run.plan.run_key:
        return None, False
    return earlier, all(run_dir.holds(b) for b in earlier.bins)


def _as_it_stands(run_dir: RunDir, manifest: LogitsManifest) -> CompileResult:
    run_dir.cache.save()  # the digests checked stand for the files' new times
    return CompileResult(manifest, True, manifest.stage)


def _load(run: CompileRun) -> None:
    shown = ", ".join(shape_text(shape) for shape in dict.fromkeys(tuple(b.shape) for b in run.inputs.bins))
    print(f"backend {run.backend.name}: {run.torchscript_path} for input {shown} float32", flush=True)
    run.backend.load(run.torchscript_path)


def _desc(run: CompileRun) -> str:
    return f"{run.backend.name} bs{run.inputs.batch_size}"


def compile_bins(
    run: CompileRun, options: CompileOptions, command: str, runner: BinRunner | None = None
) -> CompileResult:
    """A whole run: every input bin -> a logits bin of the same name, with its record, then the manifest; run
    here, then the throughput figure, added to the manifest. `runner` runs the bins elsewhere (a cluster):
    this process then only checks and writes, and measures no throughput."""
    if runner is None:  # before any dir is made; a runner's workers check their own CPUs as they load
        run.backend.check_cpu()
    keys = run.keys
    run_dir = _logits_dir(run, keys)
    earlier, finished = _finished(run, run_dir)
    timing = (options.warmup_runs, options.timed_runs, options.device.threads)
    measured = earlier is not None and earlier.throughput is not None and (
        earlier.throughput.warmup_runs, len(earlier.throughput.run_s), earlier.throughput.threads) == timing
    if earlier is not None and finished and not options.overwrite and (measured or runner is not None):
        return _as_it_stands(run_dir, earlier)
    with writing(run_dir, run.plan.run_key, keys, command):
        if runner is None:
            _load(run)
        tally = Tally()
        first = largest_first(run.inputs.bins)[0]  # what the throughput figure runs (every bin, with one static
        # shape; the longest rows, with whole utterances sorted by length)
        local = LocalRunner(run.backend, run.input_dir, tally, also_prepare=(tuple(first.shape),))
        make = logits_maker(run_dir, run.plan, run.sources, runner or local, tally)
        bins = complete(run_dir, keys, make, overwrite=options.overwrite, desc=_desc(run))
        stage = standing_figures(tally.stage(len(bins), SAMPLE_RATE), earlier.stage if earlier else None)
        manifest = run.plan.manifest(bins, stage)
        run_dir.finish(manifest)
        if runner is not None:
            return CompileResult(manifest, False, stage)
        batch = as_array(read_bytes(run.input_dir / first.name, first.shape, "Re-run preprocess."), first.shape)
        throughput = dataclasses.replace(
            measure_throughput(run.backend, batch, options.warmup_runs, options.timed_runs),
            threads=options.device.threads,
        )
        stage = dataclasses.replace(manifest.stage, peak_rss_mib=peak_rss_mib())
        manifest = dataclasses.replace(manifest, throughput=throughput, stage=stage)
        run_dir.update(manifest)
    return CompileResult(manifest, False, stage)


def compile_shard(run: CompileRun, options: CompileOptions, command: str, shard: Shard) -> CompileResult:
    """One worker's bins of a run (bin i is shard i mod N + 1's) and its shard record: no manifest, no
    throughput; --merge writes the manifest once every shard has finished."""
    run.backend.check_cpu()
    keys = run.keys
    mine = owned(keys, shard)
    run_dir = _logits_dir(run, mine, shard)
    earlier, finished = _finished(run, run_dir)
    if earlier is not None and finished and not options.overwrite:
        return _as_it_stands(run_dir, earlier)
    with writing(run_dir, run.plan.run_key, keys, command, restart=options.overwrite):
        _load(run)
        tally = Tally()
        make = logits_maker(run_dir, run.plan, run.sources, LocalRunner(run.backend, run.input_dir, tally), tally)
        bins = complete(run_dir, mine, make, overwrite=options.overwrite, desc=_desc(run))
        stage = tally.stage(len(bins), SAMPLE_RATE)
        stage = finish_shard(run_dir, run.plan.run_key, bins, stage) or stage
    return CompileResult(None, False, stage)


def merge_shards(run: CompileRun, options: CompileOptions, command: str) -> CompileResult:
    """Run no bin: check that every shard of the run finished its bins, then write the manifest with the
    shards' figures as one run's."""
    keys = run.keys
    run_dir = _logits_dir(run, keys)
    earlier, finished = _finished(run, run_dir)
    if earlier is not None and finished:
        return _as_it_stands(run_dir, earlier)
    shards = run_dir.finished_shards(run.plan.run_key, run.plan.settings)  # refused here, before any write
    with writing(run_dir, run.plan.run_key, keys, command, shards=shards[0].count):
        bins = merge_bins(run_dir, keys, shards)
        manifest = run.plan.manifest(bins, merged_stage([s.stage for s in shards if s.stage is not None]))
        run_dir.finish(manifest)
    return CompileResult(manifest, False, manifest.stage)


def run_compile(
    input_dir: Path,
    output_dir: Path,
    torchscript_path: Path,
    options: CompileOptions,
    command: str,
    split: Split | None = None,
) -> CompileResult:
    """compile.py in memory: plan the run, then run it whole, as `split.shard`, or as the merge of its shards."""
    split = split or Split()
    split.check(options.overwrite)
    run = plan_compile(input_dir, output_dir, torchscript_path, options)
    if split.shard is not None:
        return compile_shard(run, options, command, split.shard)
    if split.merge:
        return merge_shards(run, options, command)
    return compile_bins(run, options, command)

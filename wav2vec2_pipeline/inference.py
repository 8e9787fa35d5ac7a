"""Stage 3: run every input bin through a backend, write logits bins, and time it two ways.

Each logits bin gets a completion record holding the sha256 of the input bin it was computed from and the key
of the model and backend, so a re-run redoes exactly the bins whose input or model changed, and postprocess
can refuse logits that no longer belong to the batch map's inputs. Nothing here imports torch until a backend
is created.
"""

import argparse
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from tqdm import tqdm

from wav2vec2_pipeline.bins import (
    DIGEST_CACHE,
    BinRecord,
    InputManifest,
    LogitsManifest,
    RunDir,
    Shard,
    ShardRecord,
    StageMetrics,
    Throughput,
    as_array,
    check_shard_options,
    is_whole,
    list_bins,
    nbytes,
    read_bytes,
    shape_text,
)
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import MAX_SAMPLES, SAMPLE_RATE, Geometry
from wav2vec2_pipeline.provenance import bytes_sha256, digest, file_sha256
from wav2vec2_pipeline.resources import check_fits, peak_rss_mib

if TYPE_CHECKING:
    from wav2vec2_pipeline.backends import Backend, Calibration
    from wav2vec2_pipeline.export import ExportRecord

MAX_THREADS = 8 * (os.cpu_count() or 1)
"""More intra-op threads than this only oversubscribe the cores (and a huge number crashes the runtime)."""
MAX_RUNS = 100_000
"""Warm-up or timed runs beyond this are a typo, not a measurement (each takes a second on a CPU)."""
CALIBRATION_MIN_BINS = 4
"""Bins, at least, spread over the plan: bucketed and --exact plans are sorted by length, so every length is seen."""
CALIBRATION_ROWS = 32
"""Rows of speech a quantised model is calibrated on (about 4 minutes at test-clean's lengths); editing the audio
of one of them changes the quantised model, and so every logits bin of the run."""
MAX_STATIC_SHAPES = 16
"""A static-shape backend compiles per shape (minutes each on an NPU): more shapes than this is a layout mistake."""
T = TypeVar("T")
AUTO = "auto"
BACKEND_NAMES = ("aie", "cuda", "onnxruntime", "torchscript", "torchscript-frozen", "onnxruntime-int8", "openvino",
                 "openvino-bf16", "openvino-int8", "cuda-fp16")
"""In the order `auto` tries them (backends.BACKENDS holds the classes)."""


def add_aie_arguments(parser: argparse.ArgumentParser) -> None:
    """torch_aie.compile's options, by default as the Ascend guide compiles this model: compile.py's and the Ray
    driver's (whose actors compile)."""
    parser.add_argument("--soc_version", default="Ascend310P3", help="aie only")
    parser.add_argument("--precision_policy", default="FP16", help="aie only: a torch_aie.PrecisionPolicy name")
    parser.add_argument("--aie_optimization_level", type=int, default=0,
                        help="aie only: torch_aie.compile's optimization_level (0, as the Ascend guide compiles it)")
    parser.add_argument("--allow_tensor_replace_int", action=argparse.BooleanOptionalAction, default=True,
                        help="aie only: run the model's int64 tensors as int32, as the Ascend guide does")


@dataclass(frozen=True, kw_only=True)
class CompileOptions:
    """compile.py's options, checked when built, before any bin is read or the model loaded."""

    batch_size: int
    backend: str = AUTO
    warmup_runs: int = 10
    timed_runs: int = 100
    max_samples: int = MAX_SAMPLES
    """Row length of bins without a manifest (from elsewhere than preprocess)."""
    device_id: int = 0
    soc_version: str = "Ascend310P3"
    precision_policy: str = "FP16"
    threads: int | None = None
    aie_optimization_level: int = 0
    allow_tensor_replace_int: bool = True
    overwrite: bool = False
    shard: Shard | None = None
    """Run only this worker's bins and write a shard record (no manifest, no throughput)."""
    merge: bool = False
    """Run no bin: check that every shard of the run finished, then write the manifest."""

    def __post_init__(self) -> None:
        checks = (
            (self.batch_size >= 1, f"--batch_size must be at least 1, got {self.batch_size}"),
            (self.backend in (AUTO, *BACKEND_NAMES), f"--backend {self.backend!r}: choose one of {AUTO}, "
                                                     f"{', '.join(BACKEND_NAMES)}"),
            (0 <= self.warmup_runs <= MAX_RUNS, f"--warmup_runs must be between 0 and {MAX_RUNS}, got "
                                                f"{self.warmup_runs}"),
            (1 <= self.timed_runs <= MAX_RUNS, f"--timed_runs must be between 1 and {MAX_RUNS} (the figure is "
                                               f"their mean), got {self.timed_runs}"),
            (self.max_samples >= 1, f"--max_samples must be positive, got {self.max_samples}"),
            (self.device_id >= 0, f"--device_id must be 0 or more, got {self.device_id}"),
            (self.aie_optimization_level >= 0, f"--aie_optimization_level must be 0 or more, got "
                                               f"{self.aie_optimization_level}"),
            (self.threads is None or 1 <= self.threads <= MAX_THREADS,
             f"--threads must be between 1 and {MAX_THREADS} ({os.cpu_count()} cores here), got {self.threads}"),
        )  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise PipelineError(message)
        check_shard_options(self.shard, self.merge, self.overwrite)


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


def run_batch(backend: "Backend", batch: np.ndarray, rows_used: int | None) -> np.ndarray:
    """Logits of every row. A backend that takes any shape runs only the rows holding speech; the logits
    of the zero pad rows, which no stage reads, are written as zeros, so the output bin keeps its shape."""
    if backend.static_shapes or rows_used is None or rows_used == batch.shape[0]:
        return backend.to_host(backend.forward(backend.to_device(batch)))
    logits = backend.to_host(backend.forward(backend.to_device(batch[:rows_used])))
    return np.concatenate([logits, np.zeros((batch.shape[0] - rows_used, *logits.shape[1:]), logits.dtype)])


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


def calibration_bins(bins: Sequence[T], batch_size: int) -> list[T]:
    """Enough of `bins` for CALIBRATION_ROWS rows and at least CALIBRATION_MIN_BINS, spread evenly over the plan
    (all of them in a smaller run)."""
    count = min(len(bins), max(CALIBRATION_MIN_BINS, -(-CALIBRATION_ROWS // batch_size)))
    return [bins[i] for i in sorted({round(x) for x in np.linspace(0, len(bins) - 1, count)})]


def rows_taken(rows_used: int, bins_picked: int) -> int:
    """How many rows of a calibration bin calibrate: its speech rows, up to an even share of CALIBRATION_ROWS."""
    return min(rows_used, -(-CALIBRATION_ROWS // bins_picked))


def calibration_from(taken: list[tuple[str, int]], batches: Callable[[], Iterable[np.ndarray]]) -> "Calibration":
    """Calibration on the first rows of each batch, as many as `taken` says beside the batch's sha256: the key
    names both, so other speech or another count is another quantised model."""
    from wav2vec2_pipeline.backends import Calibration

    def rows() -> Iterator[np.ndarray]:
        for (_, count), batch in zip(taken, batches(), strict=True):
            yield from (row[None] for row in batch[:count])

    return Calibration(digest({"bins": [[sha256, count] for sha256, count in taken]}), rows)


def calibration_of(input_dir: Path, bins: list[BinRecord], batch_size: int) -> "Calibration":
    """The speech rows of the calibration bins (bucketed plans are sorted by length, so every length is seen):
    the same for every shard of a run, so one quantised model serves them all."""
    picked = calibration_bins(bins, batch_size)

    def batches() -> Iterator[np.ndarray]:
        for record in picked:
            data = read_bytes(input_dir / record.name, record.shape, "Re-run preprocess.")
            if bytes_sha256(data) != record.sha256:  # it names the quantised model: never calibrate on other bytes
                raise PipelineError(
                    f"{input_dir / record.name} is not the bin its manifest lists (its content changed since "
                    "preprocess wrote it); re-run wav2vec2_preprocess.py with --overwrite"
                )
            yield as_array(data, record.shape)

    return calibration_from([(r.sha256, rows_taken(r.rows_used or r.shape[0], len(picked))) for r in picked], batches)


@dataclass(frozen=True)
class TracedModel:
    """traced.pth as the logits depend on it: its content, and its export record where that still describes it."""

    sha256: str
    export: "ExportRecord | None"

    @property
    def geometry(self) -> Geometry:
        return self.export.geometry if self.export is not None else Geometry()

    @property
    def vocab_size(self) -> int:
        return len(self.export.vocab) if self.export is not None and self.export.vocab else self.geometry.vocab_size


def traced_model(torchscript_path: Path) -> TracedModel:
    from wav2vec2_pipeline.export import model_sha256, read_record

    model_sha = model_sha256(torchscript_path)
    export = read_record(torchscript_path)
    if export is not None and export.sha256 != model_sha:
        export = None  # traced.pth was replaced since: its record says nothing about it
    return TracedModel(model_sha, export)


BinResult = tuple[BinRecord, np.ndarray, str]
"""An input bin's record, its logits, and the sha256 of the input bytes they were computed from."""
BinRunner = Callable[[list[BinRecord]], Iterable[BinResult]]
"""Runs input bins somewhere and gives back their logits, in any order."""


@dataclass(frozen=True)
class LocalRunner:
    """The bins one after another on a loaded backend in this process, each read as it is run."""

    backend: "Backend"
    input_dir: Path

    def __call__(self, bins: list[BinRecord]) -> Iterator[BinResult]:
        for source in bins:
            data = read_bytes(self.input_dir / source.name, source.shape, "Re-run preprocess.")
            yield source, run_batch(self.backend, as_array(data, source.shape), source.rows_used), bytes_sha256(data)


def put_logits(
    run_dir: RunDir, source: BinRecord, key: str, logits: np.ndarray, input_sha256: str, model: TracedModel
) -> BinRecord:
    """Write one bin's logits with their record, once they are checked to be numbers of the shape the model and
    the input bin call for."""
    if not np.isfinite(logits).all():
        raise PipelineError(
            f"the model returned non-finite logits for {source.name} (NaN or inf): its input bin holds "
            "audio out of range, or the model's weights are broken; check the audio and re-run preprocess"
        )
    expected = (source.shape[0], model.geometry.num_frames(source.shape[1]), model.vocab_size)
    if logits.shape != expected:
        raise PipelineError(
            f"the model returned logits of shape {shape_text(logits.shape)} for {source.name}; expected "
            f"{shape_text(expected)} (frames from the model's conv strides, tokens from its vocabulary)"
        )
    return run_dir.put(source.name, logits, key=key, rows_used=source.rows_used,
                       speech_samples=source.speech_samples, input_sha256=input_sha256)  # fmt: skip


def logits_run_key(model_sha256: str, inputs_run_key: str, backend: str, options: list[str] | None) -> str:
    """What a whole logits run is computed from: the model, the preprocess run of its inputs, the backend."""
    return digest({"model": model_sha256, "inputs": inputs_run_key, "backend": backend, "options": options})


@dataclass(frozen=True)
class CompileResult:
    manifest: LogitsManifest | None
    """None for a shard: the merge writes it."""
    up_to_date: bool
    """Nothing was run: a finished run of the same model, inputs and backend was there, figures and all."""
    stage: StageMetrics


def logits_key(model_sha256: str, input_sha256: str, shape: list[int], backend: str, options: list[str] | None) -> str:
    """What a logits bin is computed from: the model, the input bin and the shape it is read as (the same bytes
    are other rows at another shape), and the backend with its options."""
    return digest({"model": model_sha256, "input": input_sha256, "shape": list(shape), "backend": backend,
                   "options": options})  # fmt: skip


def check_paths(input_dir: Path, output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise PipelineError(f"--output_path {output_dir} is a file; pass a dir for the logits bins")
    inside, outside = output_dir.resolve(), input_dir.resolve()
    if inside == outside or inside.is_relative_to(outside) or outside.is_relative_to(inside):
        raise PipelineError(
            f"--output_path {output_dir} and --input_path {input_dir} overlap; write the logits to a dir of their own"
        )


def compile_bins(
    input_dir: Path,
    output_dir: Path,
    torchscript_path: Path,
    options: CompileOptions,
    command: str,
    backend: "Backend | None" = None,
    runner: "BinRunner | None" = None,
) -> CompileResult:
    """Every input bin -> a logits bin of the same name, with its record; the manifest once all are done;
    then the throughput figure, added to the manifest. `backend` (not yet loaded) replaces the one
    `options.backend` names, for a driver that brings its own. `runner` runs the bins elsewhere (a cluster)
    instead of on `backend` here: this process then only checks and writes, and measures no throughput."""
    from wav2vec2_pipeline.backends import DeviceOptions, create_backend

    check_paths(input_dir, output_dir)
    inputs = find_input_bins(input_dir, options.batch_size, options.max_samples)
    model = traced_model(torchscript_path)
    model_sha, export, geometry = model.sha256, model.export, model.geometry
    longest = max(record.shape[1] for record in inputs.bins)
    what = f"a batch of {options.batch_size} x {longest} samples"
    check_fits(geometry.least_bytes(options.batch_size, longest), what, "Preprocess with a smaller --batch_size.")
    device = DeviceOptions(options.device_id, options.soc_version, options.precision_policy, options.threads,
                           options.aie_optimization_level, options.allow_tensor_replace_int)  # fmt: skip
    backend = backend or create_backend(options.backend, device)
    if runner is None:  # before any dir is made; a runner's workers check their own CPUs as they load
        backend.check_cpu()
    shapes = dict.fromkeys(tuple(b.shape) for b in inputs.bins)
    if backend.static_shapes and len(shapes) > MAX_STATIC_SHAPES:
        raise PipelineError(
            f"--backend {backend.name} compiles one model per input shape, and the bins in {input_dir} have "
            f"{len(shapes)} (preprocess --exact?): preprocess with --bucket (a few lengths) or one --max_samples"
        )
    if backend.needs_calibration:
        backend.calibration = calibration_of(input_dir, inputs.bins, inputs.batch_size)
    backend_options = backend.key_options()
    run_key = logits_run_key(model_sha, inputs.run_key, backend.name, backend_options)
    run_dir = RunDir(output_dir, LogitsManifest, options.shard)
    for preprocess_cache in (input_dir / DIGEST_CACHE, *input_dir.glob(".digests-shard-*.json")):
        run_dir.cache.absorb(preprocess_cache)  # preprocess knew its bins' digests: checking them costs a stat
    mine = [(i, b) for i, b in enumerate(inputs.bins) if options.shard is None or options.shard.owns(i)]
    changed = [b.name for _, b in tqdm(mine, desc="checking input bins", disable=None)
               if b.sha256 and run_dir.cache.sha256(input_dir / b.name) != b.sha256]  # fmt: skip
    if changed:
        raise PipelineError(
            f"{input_dir / changed[0]} is not the bin its manifest lists (its content changed since preprocess "
            f"wrote it; {len(changed)} such bin(s)); re-run wav2vec2_preprocess.py with --overwrite"
        )
    previous = run_dir.manifest() if output_dir.is_dir() else None
    if previous is not None and previous.run_key != run_key:
        previous = None
    finished = previous is not None and all(run_dir.holds(b) for b in previous.bins)
    measured = previous is not None and previous.throughput is not None and (
        previous.throughput.warmup_runs, len(previous.throughput.run_s), previous.throughput.threads
    ) == (options.warmup_runs, options.timed_runs, options.threads)  # other timing options: measure again
    if finished and not options.overwrite and (measured or options.shard or options.merge or runner is not None):
        run_dir.cache.save()  # a shard or merge of a finished run has nothing to add: its manifest stands
        return CompileResult(previous, True, previous.stage)
    settings = " ".join([f"--backend {backend.name}", *(backend_options or [])])
    shards = run_dir.finished_shards(run_key, settings) if options.merge else []  # refused here, before any write

    with run_dir.lock(options.shard):
        if not options.merge and runner is None:
            shown = ", ".join(shape_text(shape) for shape in shapes)
            print(f"backend {backend.name}: {torchscript_path} for input {shown} float32", flush=True)
            backend.load(torchscript_path)
        keys = {b.name: logits_key(model_sha, b.sha256, b.shape, backend.name, backend_options) for b in inputs.bins}
        run_dir.begin(run_key, keys, command, options.shard)
        finished_bins: dict[str, BinRecord] = {}
        for position, source in mine:
            record = None if options.overwrite else run_dir.done(source.name, keys[source.name])
            if record is None and options.merge:
                raise run_dir.missing_bin(source.name, position, shards)
            if record is not None:
                finished_bins[source.name] = record
        todo = [source for _, source in mine if source.name not in finished_bins]
        if not options.merge and runner is None:  # a static-shape backend compiles each (minutes on an NPU)
            timed = [] if options.shard else [inputs.bins[0]]  # the batch the throughput figure runs
            for shape in dict.fromkeys(tuple(b.shape) for b in [*todo, *timed]):
                backend.prepare(shape)
        rows_run, speech_samples = 0, 0
        start = time.perf_counter()
        results = (runner or LocalRunner(backend, input_dir))(todo)  # in any order: keyed by bin name
        for source, logits, input_sha in tqdm(results, total=len(todo), desc=f"{backend.name} bs{inputs.batch_size}",
                                              disable=None):  # fmt: skip
            if source.sha256 and input_sha != source.sha256:
                raise PipelineError(
                    f"{input_dir / source.name} is not the bin its manifest lists (its content changed while "
                    "this run read the bins); re-run wav2vec2_preprocess.py with --overwrite"
                )
            finished_bins[source.name] = put_logits(run_dir, source, keys[source.name], logits, input_sha, model)
            rows_run += source.shape[0] if backend.static_shapes else source.rows_used
            speech_samples += source.speech_samples
        require_all(finished_bins, [source.name for _, source in mine])
        done = [finished_bins[source.name] for _, source in mine]
        stage = StageMetrics(len(done), rows_run, time.perf_counter() - start, speech_samples / SAMPLE_RATE,
                             peak_rss_mib())  # fmt: skip
        if options.shard is not None:
            shard = options.shard
            earlier = run_dir.shard_record(shard, run_key)
            if rows_run == 0 and earlier is not None and earlier.stage is not None:
                stage = earlier.stage  # every bin of the shard was finished earlier: its figures stand
            run_dir.finish_shard(ShardRecord(run_key, shard.index, shard.count, [r.name for r in done], stage))
            return CompileResult(None, False, stage)
        if shards:
            stage = merged_stage([s.stage for s in shards if s.stage is not None])
        elif rows_run == 0 and previous is not None:
            stage = previous.stage  # every bin was finished earlier: its figures stand
        manifest = LogitsManifest(
            run_key=run_key, batch_size=inputs.batch_size, input_run_key=inputs.run_key, model_sha256=model_sha,
            backend=backend.name, backend_options=backend_options, map_digest=inputs.map_digest,
            vocab=export.vocab if export is not None else None, bins=done, stage=stage,
        )  # fmt: skip
        run_dir.finish(manifest)
        if options.merge or runner is not None:
            return CompileResult(manifest, False, stage)  # the throughput figure needs the model here: a plain run
        first = inputs.bins[0]
        batch = as_array(read_bytes(input_dir / first.name, first.shape, "Re-run preprocess."), first.shape)
        throughput = dataclasses.replace(
            measure_throughput(backend, batch, options.warmup_runs, options.timed_runs), threads=options.threads
        )
        stage = dataclasses.replace(manifest.stage, peak_rss_mib=peak_rss_mib())
        manifest = dataclasses.replace(manifest, throughput=throughput, stage=stage)
        run_dir.update(manifest)
    return CompileResult(manifest, False, stage)


def require_all(finished: Mapping[str, BinRecord], names: list[str]) -> None:
    """Every bin of the run finished, before a manifest names them: a runner elsewhere may lose some quietly."""
    lost = [name for name in names if name not in finished]
    if lost:
        raise PipelineError(
            f"{len(lost)} bin(s) never came back from where they ran (e.g. {lost[0]}); the bins finished so far are "
            "kept: run the same command again to run the rest"
        )


def merged_stage(shards: list[StageMetrics]) -> StageMetrics:
    """The shards' figures as one run's: work summed, wall time the longest shard's (they ran side by side)."""
    return StageMetrics(
        bins_run=sum(s.bins_run for s in shards), rows_run=sum(s.rows_run for s in shards),
        wall_s=max(s.wall_s for s in shards), speech_s=sum(s.speech_s for s in shards),
        peak_rss_mib=max(s.peak_rss_mib for s in shards),
    )  # fmt: skip

"""Stage 3, or stages 1 and 3 fused, on a Ray cluster: a pool of actors each loads the model once and runs bins;
this process (the driver) plans, checks and writes every file, exactly as the stages would.

From input bins (`run_bins`) it is compile.py's own run (`inference.compile_bins`) with the bins sent to the
actors instead of a local backend. From audio (`run_audio`) it plans from the audio headers as preprocess does,
Ray tasks decode and normalise each bin's audio in memory, the actors run the model, and the driver writes the
logits bins, the batch map and the ground truth that preprocess + compile.py would have written; the input bins
are never written, only their sha256 (computed from the bytes the model saw), which the map and the logits
records carry as they would. Ray keeps no order, so everything coming back is keyed by bin name; records and the
manifest are written here only, so a re-run after any failure runs only the bins not yet complete.

Ray is imported only here, and only once there is a bin to run.
"""

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wav2vec2_pipeline import calibration, records
from wav2vec2_pipeline.audioplan import (
    BinPlan,
    PreprocessOptions,
    audio_loader,
    bin_speech,
    check_paths,
    identify_inputs,
    plan_inputs,
    up_to_date,
    write_map_and_truth,
)
from wav2vec2_pipeline.batchmap import MapBin
from wav2vec2_pipeline.binfile import DTYPE, as_array, read_bytes
from wav2vec2_pipeline.binrows import make_batch, run_batch
from wav2vec2_pipeline.cluster import ClusterOptions, check_cluster, connected, ray_error
from wav2vec2_pipeline.device import DeviceOptions, cpu_auto
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.inference import (
    MAX_STATIC_SHAPES,
    CompileOptions,
    CompileResult,
    compile_bins,
    plan_compile,
)
from wav2vec2_pipeline.librispeech import Utterance
from wav2vec2_pipeline.logits import BinResult, LogitsPlan, largest_first, logits_maker, traced_model
from wav2vec2_pipeline.manifests import BinRecord, LogitsManifest, StageMetrics
from wav2vec2_pipeline.model import MAX_SAMPLES, SAMPLE_RATE
from wav2vec2_pipeline.planning import Bin, Row
from wav2vec2_pipeline.provenance import bytes_sha256
from wav2vec2_pipeline.registry import AUTO, BACKENDS
from wav2vec2_pipeline.rundir import RunDir
from wav2vec2_pipeline.runloop import Tally, complete, standing_figures, writing

if TYPE_CHECKING:
    from wav2vec2_pipeline.audio import Conversion
    from wav2vec2_pipeline.backends import Backend

ACTOR_RESTARTS = 3
"""An actor whose process dies (killed, out of memory, its node gone) is restarted this often, and the bins it
held are retried: enough to ride out a lost node or two, few enough that a model that kills its process on
every bin stops the run instead of looping (Ray Data's own default is without limit)."""
TASK_RETRIES = 3
"""The same for the decoding tasks and for each actor call."""
INPUTS_DIR = ".inputs"
"""In the logits dir, fused mode: a record per input bin made in memory (its sha256 and what made it), so a
re-run knows which logits are complete without decoding the audio again."""


def actor_device(name: str, cluster: ClusterOptions, device: DeviceOptions | None = None) -> tuple[str, DeviceOptions]:
    """The backend every actor runs, and its device options (`device`'s torch_aie options): `auto` is the NPU or
    GPU backend where actors get one, else what compile.py's auto takes on this machine's CPU. A backend whose
    device the actors do not get is refused now rather than failing on every actor."""
    needs = {"npu": ("--npus_per_actor", cluster.npus_per_actor), "gpu": ("--gpus_per_actor", cluster.gpus_per_actor)}
    # an actor sees its own devices from 0, and runs as many threads as the CPUs it reserves
    device = dataclasses.replace(device or DeviceOptions(), device_id=0, threads=int(cluster.cpus_per_actor))
    if name == AUTO:  # the driver's own NPU or GPU is not the actors'
        given = {kind for kind, (_, amount) in needs.items() if amount}
        name = next((n for n in BACKENDS.names if BACKENDS.load(n).device_kind in given), None) or cpu_auto()
    kind = BACKENDS.load(name).device_kind
    if kind in needs and not needs[kind][1]:
        raise PipelineError(
            f"--backend {name} runs on a device that the actors get only with {needs[kind][0]} (e.g. 1); pass it, "
            "or choose a CPU backend (--backend onnxruntime)"
        )
    return name, device


class ModelActor:
    """One per actor: the model loaded once, then calls of a few bins each, each bin read from its path (from
    input bins) or given as bytes (decoded from audio). What comes back is keyed by bin name."""

    def __init__(self, backend: "Backend", torchscript_path: str) -> None:
        self.backend = backend
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        backend.load(Path(torchscript_path))

    def run(self, data: bytearray, shape: tuple[int, int], rows_used: int) -> np.ndarray:
        self.backend.prepare(shape)  # once per shape: a static-shape backend compiles (or loads) it the first time
        return run_batch(self.backend, as_array(data, shape), rows_used)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"name": [], "logits": [], "frames": [], "tokens": [], "input_sha256": [],
                                "actor": [], "busy_s": [], "started": []}  # fmt: skip
        for index, name in enumerate(batch["name"]):
            shape = (int(batch["height"][index]), int(batch["samples"][index]))
            if "data" in batch:
                data = bytearray(batch["data"][index])
            else:
                data = read_bytes(Path(batch["path"][index]), shape, "Re-run preprocess.")
            out["started"].append(time.time())  # wall clock: the driver compares it with its own
            start = time.perf_counter()
            logits = self.run(data, shape, int(batch["rows_used"][index]))
            out["busy_s"].append(time.perf_counter() - start)
            out["name"].append(str(name))
            out["logits"].append(np.ascontiguousarray(logits, DTYPE).tobytes())
            out["frames"].append(logits.shape[1])
            out["tokens"].append(logits.shape[2])
            out["input_sha256"].append(bytes_sha256(data))
            out["actor"].append(self.name)
        return {key: np.array(values, dtype=object if key == "logits" else None) for key, values in out.items()}


def decode_bins(
    batch: dict[str, np.ndarray], *, model_dir: str | None, conversion: "Conversion"
) -> dict[str, np.ndarray]:
    """A Ray task: each bin's rows decoded and normalised from its audio files, as preprocess would write it."""
    data = []
    for rows_json, audio_json, samples, height in zip(batch["rows"], batch["audio"], batch["samples"], batch["height"],
                                                      strict=True):
        rows = [Row(utt_id, start, (first, last)) for utt_id, start, first, last in json.loads(rows_json)]
        audio = json.loads(audio_json)
        normalized = audio_loader({u: Utterance(u, Path(path), None) for u, (path, _) in audio.items()},
                                {u: length for u, (_, length) in audio.items()},
                                Path(model_dir) if model_dir else None, conversion)  # fmt: skip
        batch_rows = make_batch(Bin(int(samples), rows, int(height)), normalized)
        data.append(np.ascontiguousarray(batch_rows, DTYPE).tobytes())
    return {"name": batch["name"], "samples": batch["samples"], "height": batch["height"],
            "rows_used": batch["rows_used"], "data": np.array(data, dtype=object)}  # fmt: skip


@dataclass
class ActorFigures:
    bins: int = 0
    rows: int = 0
    speech_s: float = 0.0
    busy_s: float = 0.0
    """Inside the model calls, bins' reads and conversions excluded."""


@dataclass
class RayRunner:
    """Runs bins on the actor pool and gives back their logits as they come (inference.BinRunner). Ray is
    started only when there is a bin to run."""

    cluster: ClusterOptions
    torchscript_path: Path
    backend: "Backend"
    input_dir: Path | None = None
    """Input bins are read from here; None: from audio, `items` describe each bin's rows and audio."""
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    decode_args: dict[str, Any] = field(default_factory=dict)
    actor: type = ModelActor
    """A stand-in with the same interface for tests (e.g. one that dies mid-run)."""
    on_result: Callable[[str], None] | None = None
    """Called in the driver after each bin comes back (tests use it to break things mid-run)."""
    actors: dict[str, ActorFigures] = field(default_factory=dict)
    started_s: float | None = None
    """Ray's start to the first result: the fixed cost of a run."""
    first_bin_unix: float | None = None
    last_result_unix: float | None = None
    """From the first bin's start on any actor to the last result written here: the run without its start-up."""

    def dataset(self, bins: list[BinRecord]) -> Any:
        import ray
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's own bar counts bins written
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes go to its log files
        if self.input_dir is None:
            rows = [{"name": b.name, **self.items[b.name]} for b in largest_first(bins)]
        else:
            rows = [{"name": b.name, "path": str(self.input_dir / b.name), "samples": b.shape[1],
                     "height": b.shape[0], "rows_used": b.rows_used} for b in largest_first(bins)]  # fmt: skip
        per_task = min(self.cluster.bins_per_task, math.ceil(len(rows) / self.cluster.actors))  # every actor busy
        dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_task))
        accelerators = {"num_gpus": self.cluster.gpus_per_actor} if self.cluster.gpus_per_actor else {}
        if self.cluster.npus_per_actor:
            accelerators["resources"] = {"NPU": self.cluster.npus_per_actor}
        with warnings.catch_warnings():  # restarts and retries have no named parameter in Ray 2.60
            warnings.simplefilter("ignore", category=DeprecationWarning)
            if self.input_dir is None:
                dataset = dataset.map_batches(decode_bins, batch_size=per_task, fn_kwargs=self.decode_args,
                                              num_cpus=1, max_retries=TASK_RETRIES)  # fmt: skip
            return dataset.map_batches(
                self.actor, batch_size=per_task, compute=ray.data.ActorPoolStrategy(size=self.cluster.actors),
                fn_constructor_kwargs={"backend": self.backend,
                                       "torchscript_path": str(self.torchscript_path.absolute())},
                num_cpus=self.cluster.cpus_per_actor, max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES,
                **accelerators,
            )  # fmt: skip

    def __call__(self, bins: list[BinRecord]) -> Iterator[BinResult]:
        if not bins:
            return
        by_name = {b.name: b for b in bins}
        start = time.perf_counter()
        with connected(self.cluster):
            try:
                for batch in self.dataset(bins).iter_batches(batch_size=None, batch_format="numpy"):
                    if self.started_s is None:
                        self.started_s = time.perf_counter() - start
                    for index, name in enumerate(batch["name"]):
                        source = by_name[str(name)]
                        shape = (source.shape[0], int(batch["frames"][index]), int(batch["tokens"][index]))
                        logits = as_array(bytearray(batch["logits"][index]), shape)
                        figures = self.actors.setdefault(str(batch["actor"][index]), ActorFigures())
                        figures.bins += 1
                        figures.rows += source.rows_used
                        figures.speech_s += source.speech_samples / SAMPLE_RATE
                        figures.busy_s += float(batch["busy_s"][index])
                        started = float(batch["started"][index])
                        self.first_bin_unix = min(started, self.first_bin_unix or started)
                        yield source, logits, str(batch["input_sha256"][index])
                        self.last_result_unix = time.time()
                        if self.on_result is not None:
                            self.on_result(source.name)
            except Exception as error:
                if not _from_ray(error):
                    raise
                raise ray_error(error) from error


def _from_ray(error: BaseException) -> bool:
    import ray.exceptions

    return isinstance(error, ray.exceptions.RayError) or type(error).__module__.split(".")[0] == "ray"


def run_bins(
    input_dir: Path,
    output_dir: Path,
    torchscript_path: Path,
    batch_size: int,
    backend_name: str,
    cluster: ClusterOptions,
    command: str,
    max_samples: int = MAX_SAMPLES,
    device: DeviceOptions | None = None,
    **runner: Any,
) -> tuple[CompileResult, RayRunner]:
    """compile.py's run (its plan, checks, keys, records and manifest) with the bins run on the actor pool.
    `max_samples`: row length of bins without a manifest, as compile.py's; `device`: torch_aie's options;
    `runner`: RayRunner's test hooks."""
    check_cluster(cluster)
    input_dir = input_dir.absolute()  # actors read it, and a cluster's workers do not start in this dir
    name, device = actor_device(backend_name, cluster, device)
    options = CompileOptions(batch_size=batch_size, backend=name, max_samples=max_samples, device=device)
    run = plan_compile(input_dir, output_dir, torchscript_path, options)
    ray_runner = RayRunner(cluster, torchscript_path, run.backend, input_dir=input_dir, **runner)
    return compile_bins(run, options, command, runner=ray_runner), ray_runner


@dataclass(frozen=True)
class FusedResult:
    manifest: LogitsManifest
    up_to_date: bool
    stage: StageMetrics
    map_file: Path | None
    ground_truth_file: Path | None


def input_record(output_dir: Path, name: str, key: str) -> BinRecord | None:
    """The record of the input bin made in memory for logits bin `name`, if it was made from what makes it now."""
    with contextlib.suppress(PipelineError):
        record = records.load(BinRecord, output_dir / INPUTS_DIR / f"{name}.json")
        if record.key == key and record.name == name:
            return record
    return None


def run_audio(
    source: Path,
    output_dir: Path,
    data_path: Path,
    torchscript_path: Path,
    options: PreprocessOptions,
    backend_name: str,
    cluster: ClusterOptions,
    command: str,
    device: DeviceOptions | None = None,
    **runner: Any,
) -> tuple[FusedResult, RayRunner]:
    """Audio -> logits bins, batch map and ground truth, as preprocess + compile.py would write them, without
    input bins; up to date (Ray not started) where a finished run of the same audio, settings, model and backend
    is there."""
    from wav2vec2_pipeline.backends import create_backend
    from wav2vec2_pipeline.model import load_feature_extractor

    check_paths(source, output_dir, data_path, "--output_path")
    check_cluster(cluster)
    name, device = actor_device(backend_name, cluster, device)
    model = traced_model(torchscript_path)
    run_dir = RunDir(output_dir, LogitsManifest)
    inputs = identify_inputs(source, options, run_dir.cache)
    by_id = {u.utt_id: u for u in inputs.utterances}

    @functools.cache  # a backend that calibrates on speech keys the run by it: planned now, not only for work
    def planned() -> BinPlan:
        return plan_inputs(source, inputs, options)

    def speech() -> calibration.Calibration:
        bins = planned()
        loader = audio_loader(by_id, bins.lengths, options.model_dir, options.conversion)
        return calibration.of_plan(bins.plan.bins, options.batch_size, loader)

    backend = create_backend(name, device, speech)
    plan = LogitsPlan(model, backend.name, backend.key_options(), backend.static_shapes, inputs.run_key,
                      options.batch_size, None)  # fmt: skip
    ray_runner = RayRunner(cluster, torchscript_path, backend, **runner)
    if up_to_date(run_dir, data_path, options.batch_size, inputs.run_key, inputs.truth_sha, inputs.audio_paths,
                  manifest_key=plan.run_key):  # fmt: skip
        run_dir.cache.save()
        manifest = run_dir.manifest()
        return FusedResult(manifest, True, manifest.stage, None, None), ray_runner
    bins = planned()
    shapes = {(b.height, b.samples) for b in bins.plan.bins}
    if backend.static_shapes and len(shapes) > MAX_STATIC_SHAPES:
        raise PipelineError(f"--backend {backend.name} compiles one model per input shape, and this layout has "
                            f"{len(shapes)}: use --layout bucket (a few lengths)")  # fmt: skip
    load_feature_extractor(options.model_dir)  # checked here, once, before any task loads it
    sources: dict[str, BinRecord] = {}
    for (bin_name, in_key), bin_ in zip(bins.keys.items(), bins.plan.bins, strict=True):
        earlier = input_record(output_dir, bin_name, in_key)
        sources[bin_name] = BinRecord(bin_name, [bin_.height, bin_.samples], earlier.sha256 if earlier else "",
                                      in_key, len(bin_.rows), bin_speech(bin_, options.layout))  # fmt: skip
        ray_runner.items[bin_name] = {
            "samples": bin_.samples, "height": bin_.height, "rows_used": len(bin_.rows),
            "rows": json.dumps([[r.utt_id, r.start, *r.keep] for r in bin_.rows]),
            "audio": json.dumps({r.utt_id: [str(by_id[r.utt_id].audio_path.absolute()), bins.lengths[r.utt_id]]
                                 for r in bin_.rows}),
        }  # fmt: skip
    model_dir = str(options.model_dir.absolute()) if options.model_dir else None  # workers start elsewhere
    ray_runner.decode_args = {"conversion": options.conversion, "model_dir": model_dir}

    def made_input(made: BinRecord) -> None:  # before the logits that depend on it
        records.save(output_dir / INPUTS_DIR / f"{made.name}.json", made)
        sources[made.name] = made

    previous = run_dir.manifest()
    keys = {name: plan.key(s, s.sha256) for name, s in sources.items()}
    with writing(run_dir, plan.run_key, keys, command):
        tally = Tally()
        make = logits_maker(run_dir, plan, sources, ray_runner, tally, made_input)
        done = complete(run_dir, keys, make, overwrite=False, desc=f"{backend.name} bs{options.batch_size}")
        stage = tally.stage(len(done), SAMPLE_RATE)
        map_bins = [MapBin(name, b.samples, sources[name].sha256, b.rows, b.height)
                    for name, b in zip(bins.keys, bins.plan.bins, strict=True)]  # fmt: skip
        batch_map, map_file, truth_file = write_map_and_truth(data_path, inputs, bins, map_bins, options)
        if previous is not None and previous.run_key == plan.run_key:
            stage = standing_figures(stage, previous.stage)
        manifest = plan.manifest(done, stage, batch_map.layout_digest)
        run_dir.finish(manifest)
    return FusedResult(manifest, False, stage, map_file, truth_file), ray_runner


def summary_line(stage: StageMetrics, runner: RayRunner) -> str:
    """The last line of a run: rows, audio seconds, audio seconds per wall second, and each actor's rate (rows
    per second where the audio is not known: bins from elsewhere, without a batch map)."""
    fixed = f"; Ray start to first result {runner.started_s:.1f} s" if runner.started_s is not None else ""

    def rate(work: float, seconds: float) -> str:
        return f"{work / seconds:.2f}" if seconds else "-"

    if stage.speech_s:
        done = (f"{stage.rows_run} rows, {stage.speech_s:.1f} s of audio in {stage.wall_s:.1f} s wall: "
                f"{rate(stage.speech_s, stage.wall_s)} audio seconds per wall second")  # fmt: skip
    else:
        done = f"{stage.rows_run} rows (audio unknown: bins without a batch map) in {stage.wall_s:.1f} s wall"
    actors = "; ".join(
        f"{name}: {f.bins} bins, {f.rows} rows, "
        + (f"{rate(f.speech_s, f.busy_s)} audio s" if stage.speech_s else f"{rate(f.rows, f.busy_s)} rows")
        + " per busy s"
        for name, f in sorted(runner.actors.items())
    )
    return f"{done}{fixed}; per actor: {actors or 'none ran'}"

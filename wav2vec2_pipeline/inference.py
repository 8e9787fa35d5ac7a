"""Stage 3: run every input bin through a backend, write logits bins, and time it two ways."""

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wav2vec2_pipeline.backends import Backend
from wav2vec2_pipeline.bins import (
    check_bin_size,
    is_whole,
    list_bins,
    read_bin,
    read_manifest,
    remove_manifest,
    write_bin,
    write_manifest,
)
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_text, make_dir

PROGRESS_FILE = ".progress.tsv"


@dataclass(frozen=True)
class InputBins:
    shapes: dict[Path, tuple[int, int]]
    """Each bin, in order, with its shape: batch_size x row length (several lengths with --bucket)."""
    rows_used: dict[Path, int] | None
    """Rows of each bin that hold speech (the rest are zero padding), where the input manifest says."""
    speech_samples: int | None
    """Speech the rows hold (each sample once), where the input manifest says."""

    @property
    def batch_size(self) -> int:
        return next(iter(self.shapes.values()))[0]


@dataclass(frozen=True)
class StageTiming:
    bins: int
    rows: int
    """Rows run by this invocation: pad rows skipped where the backend allows, and bins finished by an
    earlier, interrupted run not run again."""
    wall_s: float


@dataclass(frozen=True)
class ModelThroughput:
    batch_size: int
    runs: int
    run_s: list[float]

    @property
    def samples_per_s(self) -> float:
        """The reference's figure: runs x batch size / total time of the timed runs."""
        return self.runs * self.batch_size / sum(self.run_s)

    @property
    def median_run_s(self) -> float:
        return statistics.median(self.run_s)


def find_input_bins(input_dir: Path, batch_size: int, max_samples: int) -> InputBins:
    """The bins to run, each checked for size before anything runs, so a bad one stops the stage early."""
    manifest = read_manifest(input_dir)
    if manifest is not None:
        shapes = {input_dir / name: (int(shape[0]), int(shape[1])) for name, shape in manifest["bins"].items()}
        made_with = manifest["batch_size"]
        if made_with != batch_size:
            raise PipelineError(
                f"bins in {input_dir} were written with --batch_size {made_with}; you passed {batch_size}. "
                f"Pass --batch_size {made_with} or preprocess again with --batch_size {batch_size}."
            )
        used = manifest.get("rows_used")
        facts = ({input_dir / name: n for name, n in used.items()} if used else None, manifest.get("speech_samples"))
    else:
        shapes, facts = {path: (batch_size, max_samples) for path in list_bins(input_dir)}, (None, None)
    if not shapes:
        raise PipelineError(f"no batch_<i>.bin files in {input_dir}: run wav2vec2_preprocess.py first")
    for path, shape in shapes.items():
        hint = f"Was it written with --batch_size {batch_size} and rows of {shape[1]} samples? Re-run preprocess."
        check_bin_size(path, shape, hint)
    return InputBins(shapes, *facts)


def run_batch(backend: Backend, batch: np.ndarray, rows_used: int | None) -> np.ndarray:
    """Logits of every row. A backend that takes any shape runs only the rows holding speech; the logits
    of the zero pad rows, which no stage reads, are written as zeros, so the output bin keeps its shape."""
    if backend.static_shapes or rows_used is None or rows_used == batch.shape[0]:
        return backend.to_host(backend.forward(backend.to_device(batch)))
    logits = backend.to_host(backend.forward(backend.to_device(batch[:rows_used])))
    return np.concatenate([logits, np.zeros((batch.shape[0] - rows_used, *logits.shape[1:]), logits.dtype)])


def completed(output_dir: Path, run_key: str) -> dict | None:
    """The output manifest, if a finished run with the same model, inputs and backend wrote it and every
    bin it lists is whole."""
    manifest = read_manifest(output_dir)
    if manifest is None or manifest.get("run_key") != run_key:
        return None
    return manifest if all(is_whole(output_dir / name, shape) for name, shape in manifest["bins"].items()) else None


def finished_bins(progress_path: Path, run_key: str) -> dict[str, list[int]]:
    """Bins an interrupted run with the same `run_key` finished: the progress file is the key, then one
    `name<TAB>shape` line per finished bin; a last line cut short by a kill is ignored."""
    lines = progress_path.read_text().splitlines() if progress_path.is_file() else []
    if not lines or lines[0] != run_key:
        return {}
    done = {}
    for line in lines[1:]:
        name, _, shape = line.partition("\t")
        try:
            done[name] = json.loads(shape)
        except json.JSONDecodeError:
            break
    return done


def run_bins(
    backend: Backend, inputs: InputBins, output_dir: Path, run_key: str, facts: dict[str, object]
) -> StageTiming:
    """Every input bin -> an output bin of the same name; the manifest is written once all are.

    A progress file records each finished bin with `run_key`, so a run that was stopped part-way resumes
    with the bins it had not finished, while bins left by another model, input or backend are redone."""
    for shape in dict.fromkeys(inputs.shapes.values()):
        backend.prepare(shape)
    make_dir(output_dir)
    remove_manifest(output_dir)
    progress_path = output_dir / PROGRESS_FILE
    done = finished_bins(progress_path, run_key)
    if not done:
        atomic_write_text(progress_path, f"{run_key}\n")
    output_shapes: dict[str, list[int]] = {}
    rows_run = 0
    start = time.perf_counter()
    for path, shape in tqdm(inputs.shapes.items(), desc=f"{backend.name} bs{inputs.batch_size}", disable=None):
        out = output_dir / path.name
        if path.name in done and is_whole(out, done[path.name]):
            output_shapes[path.name] = done[path.name]
            continue
        used = None if inputs.rows_used is None else inputs.rows_used[path]
        logits = run_batch(backend, read_bin(path, shape, ""), used)
        if logits.ndim != 3 or logits.shape[0] != shape[0]:
            raise PipelineError(
                f"the model returned logits of shape {logits.shape} for {path.name}; expected N x frames x vocab"
            )
        write_bin(out, logits)
        output_shapes[path.name] = list(logits.shape)
        rows_run += shape[0] if used is None or backend.static_shapes else used
        with progress_path.open("a") as progress:  # one short line a bin: appending stays cheap over thousands
            progress.write(f"{path.name}\t{json.dumps(output_shapes[path.name])}\n")
    wall_s = time.perf_counter() - start
    write_manifest(
        output_dir, output_shapes, batch_size=inputs.batch_size, run_key=run_key, backend=backend.name, **facts
    )
    progress_path.unlink(missing_ok=True)
    return StageTiming(len(output_shapes), rows_run, wall_s)


def measure_throughput(backend: Backend, batch: np.ndarray, warmup_runs: int, timed_runs: int) -> ModelThroughput:
    """The reference's method: one batch resident on the device, warm-up, then timed runs each
    ended by a synchronize; host-device copies are outside the timed region."""
    if timed_runs < 1 or warmup_runs < 0:
        raise PipelineError(f"need --timed_runs >= 1 and --warmup_runs >= 0, got {timed_runs} and {warmup_runs}")
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
    return ModelThroughput(batch.shape[0], timed_runs, run_s)

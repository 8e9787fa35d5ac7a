"""What the Ray Data driver costs over compile.py, how well it keeps actors busy, and what that projects to.

    python3 -m benchmarks.ray_overhead [--rounds 3] [--bins 32] [--stand_in_s 0.2] [--skip_base]

In one run, rounds interleaved, on the same input bins (1 s of noise each, batch size 1, tiny model, one
thread everywhere):
- fixed cost: a fresh local Ray started, the actor pool up and the first result back (what every run pays);
- per bin: compile.py's own loop (`inference.compile_bins`: bin read, model, write) against the driver's, from
  the first bin's start on an actor to the last result written (start-up left out), with the tiny model and
  with a stand-in actor that returns at once (Ray's own work), one bin per task and four;
- scheduling efficiency with 1, 2 and 4 actors against a device stand-in (an actor that sleeps a fixed time
  per bin and uses no CPU, so that a 2-core machine does not limit it): the ideal time (bins x sleep / actors)
  over the time from the first bin's start to the last result;
- per-actor throughput of the real work: base-size random model, one actor on both cores, fused mode on the 7
  real utterances of ../shared/data/librispeech-mini (chunked), audio seconds per busy second, and from it a
  projection for test-clean (5.4 h) and 960 h on N such actors (skip it with --skip_base).
Medians and the spread of the rounds. A 2-core machine cannot show a speed-up from more actors on real work:
the stand-in shows the scheduling alone. Prints a markdown report; writes nothing outside a temp dir.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.random_base_model import save_random_base_model, save_tiny_model
from wav2vec2_pipeline.audioplan import PreprocessOptions
from wav2vec2_pipeline.cluster import ClusterOptions, ray_init_args
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.distributed import ModelActor, run_audio, run_bins
from wav2vec2_pipeline.export import export
from wav2vec2_pipeline.inference import CompileOptions, run_compile
from wav2vec2_pipeline.model import SAMPLE_RATE, Geometry
from wav2vec2_pipeline.planning import CHUNK, Layout
from wav2vec2_pipeline.preprocess import preprocess

BIN_SAMPLES = SAMPLE_RATE
"""1 s rows: small enough that Ray's own cost per bin is visible beside the tiny model's."""
MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech-mini" / "LibriSpeech" / "test-clean"
PROJECTED_HOURS = {"test-clean (5.4 h)": 5.4, "960 h": 960.0}
PROJECTED_ACTORS = (1, 8, 64)


def stand_in(sleep_s: float) -> type:
    """A device stand-in: waits `sleep_s` per bin instead of running the model, and returns zero logits of the
    right shape; defined here so that Ray ships it by value."""

    class DeviceStandIn(ModelActor):
        def run(self, data: bytearray, shape: tuple[int, int], rows_used: int) -> np.ndarray:
            time.sleep(sleep_s)
            return np.zeros((shape[0], Geometry().num_frames(shape[1]), 32), np.float32)

    return DeviceStandIn


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """Median (lowest-highest) of the rounds."""
    values = [v * scale for v in values]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def timed_ray_run(work: Path, traced: Path, cluster: ClusterOptions, actor: type = ModelActor) -> tuple[float, float]:
    """(seconds from the call to the first result, seconds per bin from the first bin's start on an actor to the
    last result written by the driver: the run without its start-up)."""
    out = work / f"out-{time.perf_counter_ns()}"
    start = time.perf_counter()
    _, runner = run_bins(work / "in", out, traced, 1, "torchscript", cluster, "benchmark", actor=actor)
    bins = sum(f.bins for f in runner.actors.values())
    return runner.started_s or time.perf_counter() - start, (runner.last_result_unix - runner.first_bin_unix) / bins


def local_per_bin(work: Path, traced: Path) -> float:
    """compile.py's loop, seconds per bin (stage wall: reads, model, writes)."""
    options = CompileOptions(batch_size=1, backend="torchscript", device=DeviceOptions(threads=1), warmup_runs=0,
                             timed_runs=1)  # fmt: skip
    result = run_compile(work / "in", work / f"local-{time.perf_counter_ns()}", traced, options, "benchmark")
    return result.stage.wall_s / result.stage.bins_run


def make_inputs(work: Path, bins: int) -> Path:
    """`bins` 1-s clips of noise, preprocessed into one bin each; the tiny model traced for them."""
    rng = np.random.default_rng(0)
    (work / "audio").mkdir(parents=True)
    for index in range(bins):
        sf.write(work / "audio" / f"clip{index:03d}.wav", 0.1 * rng.standard_normal(BIN_SAMPLES), SAMPLE_RATE)
    options = PreprocessOptions(batch_size=1, layout=Layout((BIN_SAMPLES,)))
    preprocess(work / "audio", work / "in", work / "data", options, "benchmark")
    model_dir = save_tiny_model(work / "tiny")
    export(str(model_dir), work / "tiny.pth", max_samples=BIN_SAMPLES)
    return work / "tiny.pth"


def base_actor_rate(work: Path) -> tuple[float, float, float]:
    """Base-size random model, one actor with both cores, fused mode on the real subset: (audio s per busy s of
    the actor, audio s per wall s of the run, audio s)."""
    model_dir = save_random_base_model(work / "base")
    export(str(model_dir), work / "base.pth", max_samples=100_000)
    options = PreprocessOptions(batch_size=1, layout=Layout((100_000,), CHUNK), model_dir=model_dir)
    cluster = ClusterOptions(actors=1, threads_per_actor=2)
    result, runner = run_audio(MINI, work / "base-out", work / "base-data", work / "base.pth", options,
                               "onnxruntime", cluster, "benchmark")  # fmt: skip
    (figures,) = runner.actors.values()
    return figures.speech_s / figures.busy_s, result.stage.speech_s / result.stage.wall_s, result.stage.speech_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bins", type=int, default=32)
    parser.add_argument("--stand_in_s", type=float, default=0.2, help="the device stand-in's time per bin")
    parser.add_argument("--skip_base", action="store_true", help="no base-size run, no projection")
    args = parser.parse_args()

    import ray

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        traced = make_inputs(work, args.bins)
        figures: dict[str, list[float]] = {}

        def note(label: str, value: float) -> None:
            figures.setdefault(label, []).append(value)

        one = ClusterOptions(actors=1, threads_per_actor=1, bins_per_task=1)
        for _ in range(args.rounds):
            first_s, _ = timed_ray_run(work, traced, one)  # its own ray.init: the fixed cost
            note("fixed", first_s)
            ray.init(**ray_init_args(ClusterOptions(actors=4)))
            try:
                note("local", local_per_bin(work, traced))
                for per_task in (1, 4):
                    cluster = ClusterOptions(actors=1, threads_per_actor=1, bins_per_task=per_task)
                    note(f"tiny {per_task}", timed_ray_run(work, traced, cluster)[1])
                    note(f"noop {per_task}", timed_ray_run(work, traced, cluster, stand_in(0.0))[1])
                for actors in (1, 2, 4):
                    cluster = ClusterOptions(actors=actors, threads_per_actor=1)
                    _, per_bin = timed_ray_run(work, traced, cluster, stand_in(args.stand_in_s))
                    note(f"efficiency {actors}", args.stand_in_s / actors / per_bin)
            finally:
                ray.shutdown()
        base = None if args.skip_base or not MINI.is_dir() else base_actor_rate(work)

    print(f"Ray overhead, {args.rounds} rounds, {args.bins} bins of 1 x {BIN_SAMPLES} samples, tiny model, one thread; "
          "median (lowest-highest round)\n")  # fmt: skip
    print("| measure | value |\n| --- | --- |")
    print(f"| fixed cost: local ray.init to the first result, 1 actor | {spread(figures['fixed'], digits=1)} s |")
    print(f"| compile.py's loop (read, model, write), per bin | {spread(figures['local'], 1000, 1)} ms |")
    for per_task in (1, 4):
        print(f"| driver, tiny model, {per_task} bin(s) per task, per bin (first bin's start to last result) | "
              f"{spread(figures[f'tiny {per_task}'], 1000, 1)} ms |")  # fmt: skip
        print(f"| driver, stand-in that returns at once (Ray's own work), {per_task} bin(s) per task, per bin | "
              f"{spread(figures[f'noop {per_task}'], 1000, 1)} ms |")  # fmt: skip
    for actors in (1, 2, 4):
        print(f"| scheduling efficiency, {actors} actor(s), stand-in of {args.stand_in_s} s per bin (4 per task) | "
              f"{spread(figures[f'efficiency {actors}'], 100, 0)} % |")  # fmt: skip
    if base is not None:
        busy_rate, wall_rate, audio_s = base
        efficiency = statistics.median(figures["efficiency 4"])
        print(f"\nPer-actor throughput, measured: base-size random model, onnxruntime, 1 actor on 2 threads, fused "
              f"mode, {audio_s:.1f} s of real audio: {busy_rate:.2f} audio s per busy s ({wall_rate:.2f} per wall s, "
              "Ray's start included)\n")  # fmt: skip
        print(f"Projection (not measured): hours of wall time = audio / (N x {busy_rate:.2f} x {efficiency:.0%}, the "
              "4-actor stand-in efficiency), plus the fixed cost; N actors each as fast as this one\n")  # fmt: skip
        print("| audio | " + " | ".join(f"{n} actor(s)" for n in PROJECTED_ACTORS) + " |")
        print("| --- |" + " --- |" * len(PROJECTED_ACTORS))
        fixed_h = statistics.median(figures["fixed"]) / 3600
        for label, hours in PROJECTED_HOURS.items():
            cells = [f"{hours / (n * busy_rate * efficiency) + fixed_h:.2f} h" for n in PROJECTED_ACTORS]
            print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\nA 2-core machine cannot show a speed-up from more actors on real work; the stand-in shows the "
          f"scheduling alone. Whole benchmark: {time.perf_counter() - started:.0f} s.")  # fmt: skip


if __name__ == "__main__":
    main()

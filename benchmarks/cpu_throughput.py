"""CPU throughput of the shipped path and its variants, side by side with eager HF transformers.

    python3 -m benchmarks.cpu_throughput [--quick] [--model_dir DIR --data LibriSpeech/test-clean]

Times, in one run and on the same inputs, at base-960h's architecture size (random weights unless
--model_dir): (a) what a user would write instead, `model(processor(audio).input_values).logits` in eager
PyTorch fp32, batched with padding in dataset order; (b) ONNX Runtime fp32; and the other CPU backends asked
for, each a compile.py backend (`auto` takes openvino-int8, openvino-bf16 or openvino by the CPU's flags). Two
workloads: fixed 100000-sample rows (the reference's measure: forward only, samples/s; it depends only on the
backend) and real test-clean lengths (a fixed-seed sample of ../shared/data/librispeech-meta durations, one
utterance from each length stratum; raw audio to text, batching and normalisation included: audio seconds per
wall second), for which each backend runs one or more row layouts (length buckets, or the static window).
Each backend runs in its own process (for its peak RSS), warmed up on the largest fixed batch and kept alive
across rounds, so every timed run is warm, as compile.py's are; rounds alternate between backends; figures
are medians over rounds. Writes benchmarks/results/cpu_throughput.md, .png and .json (every round's
timings)."""

import argparse
import functools
import json
import multiprocessing
import operator
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from benchmarks.padding_waste import DURATIONS, read_lengths
from benchmarks.random_base_model import save_random_base_model
from benchmarks.report import save_table
from wav2vec2_pipeline import calibration
from wav2vec2_pipeline.audio import read_audio
from wav2vec2_pipeline.backends import Backend, create_backend
from wav2vec2_pipeline.binrows import run_batch
from wav2vec2_pipeline.core import transcribe
from wav2vec2_pipeline.ctc import greedy_decode
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.export import save_torchscript, trace
from wav2vec2_pipeline.librispeech import find_utterances
from wav2vec2_pipeline.model import BASE_960H_VOCAB, MAX_SAMPLES, SAMPLE_RATE, load_ctc_model, load_geometry
from wav2vec2_pipeline.planning import CHUNK, DEFAULT_BUCKET_SAMPLES, Layout
from wav2vec2_pipeline.scoring import corpus_wer

RESULTS = Path(__file__).resolve().parent / "results"
EAGER = "eager"
ORT = "onnxruntime"
"""ONNX Runtime fp32, the baseline (b)."""
BACKEND_LABELS = {
    EAGER: "(a) eager HF transformers",
    ORT: "(b) onnxruntime fp32",
    "openvino": "openvino fp32",
    "openvino-bf16": "openvino-bf16",
    "openvino-int8": "openvino-int8",
    "openvino-int8-fp32": "openvino-int8, float ops fp32 (auto on a CPU without bf16)",
    "onnxruntime-int8": "onnxruntime-int8 (opt-in)",
    "torchscript": "torchscript",
    "torchscript-frozen": "torchscript-frozen",
}


@dataclass(frozen=True)
class Variant:
    """A way from raw audio to text on the real-length workload: a backend and the row layout it runs."""

    key: str
    backend: str
    """A compile.py backend name, or `eager` for the HF model itself."""
    windows: tuple[int, ...]
    """Row lengths (one: the static window, long utterances chunked; several: `--bucket`); eager: none."""
    label: str


VARIANTS = (
    Variant(EAGER, EAGER, (), "(a) eager HF transformers, each batch padded to its longest"),
    Variant(ORT, ORT, DEFAULT_BUCKET_SAMPLES, "(b) onnxruntime --bucket"),
    Variant("onnxruntime-window", ORT, (MAX_SAMPLES,), "(b) onnxruntime, 100000-sample window"),
    Variant("onnxruntime-int8", "onnxruntime-int8", DEFAULT_BUCKET_SAMPLES, "onnxruntime-int8 --bucket (opt-in)"),
    Variant("torchscript", "torchscript", (MAX_SAMPLES,), "torchscript, 100000-sample window"),
    Variant("torchscript-frozen", "torchscript-frozen", DEFAULT_BUCKET_SAMPLES, "torchscript-frozen --bucket"),
    Variant("openvino", "openvino", DEFAULT_BUCKET_SAMPLES, "openvino fp32 --bucket"),
    Variant("openvino-bf16", "openvino-bf16", DEFAULT_BUCKET_SAMPLES, "openvino-bf16 --bucket"),
    Variant("openvino-int8", "openvino-int8", DEFAULT_BUCKET_SAMPLES, "openvino-int8 --bucket"),
    Variant("openvino-int8-fp32", "openvino-int8-fp32", DEFAULT_BUCKET_SAMPLES, "openvino-int8 fp32 floats --bucket"),
)
INT8_FP32 = "openvino-int8-fp32"
"""openvino-int8 as a CPU without bf16 runs it (its float ops fp32), on this CPU."""
DEFAULT_VARIANTS = (EAGER, ORT, "openvino", "openvino-bf16", "openvino-int8")
"""The rest measured no faster than these in earlier runs (README), and each costs a minute or more."""


@dataclass(frozen=True)
class RowFlops:
    """FLOPs of one row, a multiply-add counted as 2; norms and activations left out."""

    convolution: float
    linear: float
    attention: float
    """Scores and weighted sums: matrix products too, but with no weights, so apart."""

    @property
    def matmul(self) -> float:
        return self.linear + self.attention

    @property
    def total(self) -> float:
        return self.convolution + self.matmul


def flops_per_row(num_samples: int, config: Wav2Vec2Config) -> RowFlops:
    conv, length, channels_in = 0.0, num_samples, 1
    for channels, kernel, stride in zip(config.conv_dim, config.conv_kernel, config.conv_stride, strict=True):
        length = (length - kernel) // stride + 1
        conv += 2 * channels_in * channels * kernel * length
        channels_in = channels
    frames, width, layers = length, config.hidden_size, config.num_hidden_layers
    conv += 2 * (width // config.num_conv_pos_embedding_groups) * width * config.num_conv_pos_embeddings * frames
    per_layer = 8 * frames * width**2 + 4 * frames * width * config.intermediate_size
    linear = 2 * frames * channels_in * width + layers * per_layer + 2 * frames * width * config.vocab_size
    return RowFlops(conv, linear, layers * 4 * frames**2 * width)


PRECISIONS = {"openvino-bf16": "bf16", "openvino-int8": "int8", "onnxruntime-int8": "int8", INT8_FP32: "int8"}
"""The precision of each backend's matrix products (fp32 where not listed): its rate is judged against that
precision's limit. openvino-int8 runs its float ops bf16 on a CPU with bf16."""


def gemm_gflops(precision: str = "fp32", size: int = 2048, repeats: int = 7) -> float:
    """This machine's matrix-product rate in `precision` (fp32, bf16, int8) through torch's oneDNN kernels,
    with the threads torch uses: the limit a backend of that precision could reach."""
    if precision == "int8":
        a, b = (torch.randint(-128, 128, (size, size), dtype=torch.int8) for _ in range(2))
        product = torch._int_mm  # int8 x int8 -> int32, VNNI/AMX where the CPU has them
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        product = torch.mm
    product(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


# ---- worker: one variant in its own process -------------------------------------------------------------------


def fixed_batch(batch_size: int) -> np.ndarray:
    return np.random.default_rng(batch_size).standard_normal((batch_size, MAX_SAMPLES), dtype=np.float32)


def eager_logits(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(batch)).logits.numpy()


def create_variant(name: str, speech: Callable[[], calibration.Calibration] | None = None) -> Backend:
    """A compile.py backend by name, or INT8_FP32; `speech`: what a quantised one calibrates on."""
    backend = create_backend("openvino-int8" if name == INT8_FP32 else name, DeviceOptions(), speech)
    if name == INT8_FP32:
        backend.precision = "f32"
    return backend


def load_backend(name: str, traced: Path, audio: dict[str, np.ndarray]) -> Backend:
    """A compile.py backend, loaded; a quantised one calibrated on `audio` as compile.py would calibrate."""
    layout, fe = Layout(DEFAULT_BUCKET_SAMPLES, CHUNK), Wav2Vec2FeatureExtractor()
    backend = create_variant(
        name, lambda: calibration.of_audio(audio, batch_size=8, layout=layout, feature_extractor=fe)
    )
    backend.load(traced)
    return backend


class Runner:
    """Raw audio -> logits for one backend."""

    def __init__(self, backend: str, spec: dict) -> None:
        self.backend_name = backend
        self.feature_extractor = Wav2Vec2FeatureExtractor()
        self.geometry = load_geometry(Path(spec["model_dir"]))
        if backend == EAGER:
            self.model = Wav2Vec2ForCTC.from_pretrained(spec["model_dir"]).eval()
        else:
            self.backend = load_backend(backend, Path(spec["traced"]), dict(np.load(spec["audio"])))

    def forward(self, batch: np.ndarray) -> np.ndarray:
        if self.backend_name == EAGER:
            return eager_logits(self.model, batch)
        return run_batch(self.backend, batch, None)

    def transcribe(self, audio: dict[str, np.ndarray], batch_size: int, windows: tuple[int, ...]) -> dict[str, str]:
        if self.backend_name == EAGER:  # what a user writes: the processor pads each batch to its longest
            ids, texts = list(audio), {}
            for start in range(0, len(ids), batch_size):
                group = ids[start : start + batch_size]
                inputs = self.feature_extractor([audio[u] for u in group], sampling_rate=SAMPLE_RATE,
                                                padding=True, return_tensors="np")  # fmt: skip
                logits = self.forward(inputs.input_values.astype(np.float32))
                for row, utt_id in enumerate(group):
                    texts[utt_id] = greedy_decode(
                        logits[row, : self.geometry.num_frames(len(audio[utt_id]))], BASE_960H_VOCAB
                    )
            return texts
        layout = Layout(windows, CHUNK, geometry=self.geometry)  # pad rows are not run, as compile.py does
        return transcribe(audio, self.backend, batch_size=batch_size, layout=layout,
                          feature_extractor=self.feature_extractor)  # fmt: skip


@dataclass
class Measured:
    """One backend's figures: per round timings, and what is measured once."""

    load_s: float
    rounds: list[dict] = field(default_factory=list)
    """Per round: `peak_gflops` (of the backend's precision, on both sides of the fixed run at `share_at`),
    `fixed_s` (seconds by batch size), `real_s` (by variant key, then batch size), and `hypotheses` (by variant
    key) of the real-length runs."""
    peak_rss_mib: float = 0.0
    parity_logits: np.ndarray | None = None
    """Logits of a fixed 2 x 100000 batch, for parity with fp32 TorchScript."""


def peak_rss_mib() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over from the
    parent across fork and exec, so a worker would report the parent's peak when its own is lower."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def one_round(runner: Runner, variants: list[Variant], audio: dict[str, np.ndarray], spec: dict) -> dict:
    result: dict = {"fixed_s": {}, "real_s": {}, "hypotheses": {}}
    for batch_size in spec["batch_sizes"]:
        batch = fixed_batch(batch_size)
        precision = PRECISIONS.get(runner.backend_name, "fp32")
        before = gemm_gflops(precision) if batch_size == spec["share_at"] else None
        start = time.perf_counter()
        runner.forward(batch)
        result["fixed_s"][batch_size] = time.perf_counter() - start
        if before is not None:  # this VM's speed drifts within seconds: take the rate on both sides of the run
            result["peak_gflops"] = (before + gemm_gflops(precision)) / 2
    for variant in variants:
        result["real_s"][variant.key] = {}
        for batch_size in spec["real_batch_sizes"]:
            start = time.perf_counter()
            result["hypotheses"][variant.key] = runner.transcribe(audio, batch_size, variant.windows)
            result["real_s"][variant.key][batch_size] = time.perf_counter() - start
    return result


def serve(backend: str, variants: list[Variant], spec: dict, connection: Connection) -> None:
    """A worker process: load the backend, then run a round each time the parent asks, until it says stop.
    Staying alive across rounds keeps every round warm, as compile.py's timed runs are."""
    torch.manual_seed(0)
    start = time.perf_counter()
    runner = Runner(backend, spec)
    measured = Measured(load_s=time.perf_counter() - start)
    audio = dict(np.load(spec["audio"]))
    runner.forward(fixed_batch(max(spec["batch_sizes"])))  # warm-up: ONNX Runtime's first run of a larger
    # shape than any before it grows its memory arena, which made that run 30-60% slower in our runs
    connection.send(None)
    while connection.recv():
        measured.rounds.append(one_round(runner, variants, audio, spec))
        connection.send(None)
    measured.parity_logits = runner.forward(fixed_batch(2))
    measured.peak_rss_mib = peak_rss_mib()
    connection.send(measured)


# ---- parent: inputs, rounds, report ---------------------------------------------------------------------------


def stratified_sample(lengths: dict[str, int], count: int, seed: int = 0) -> list[str]:
    """One utterance drawn from each of `count` equal strata of the length distribution, in id order: a few
    utterances whose lengths, and so the padding a batch of them carries, resemble the whole split's."""
    by_length = sorted(lengths, key=lambda utt_id: (lengths[utt_id], utt_id))
    rng = random.Random(seed)
    strata = (by_length[i * len(by_length) // count : (i + 1) * len(by_length) // count] for i in range(count))
    return sorted(rng.choice(stratum) for stratum in strata)


def padding_share(lengths: list[int], batch_size: int) -> float:
    """Share of the samples eager computes that are padding: batches in order, each padded to its longest."""
    groups = [lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size)]
    return 1 - sum(lengths) / sum(max(group) * len(group) for group in groups)


def real_audio(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Real audio and transcripts from --data, or noise of real test-clean lengths (a fixed-seed sample)."""
    if args.data is not None:
        utterances = find_utterances(args.data)
        return {u.utt_id: read_audio(u.audio_path) for u in utterances}, {u.utt_id: u.transcript for u in utterances}
    lengths = read_lengths(DURATIONS)
    rng = np.random.default_rng(0)
    sample = stratified_sample(lengths, args.utterances)
    return {u: (0.1 * rng.standard_normal(lengths[u])).astype(np.float32) for u in sample}, {}


def measure(plan: dict[str, list[Variant]], spec: dict, rounds: int) -> dict[str, Measured]:
    """Each backend in its own process (for its own peak RSS), all alive at once; rounds alternate between
    backends, so a slow spell of the machine hits them all alike."""
    context = multiprocessing.get_context("spawn")
    connections, processes = {}, []
    for backend, variants in plan.items():
        parent_end, child_end = context.Pipe()
        processes.append(context.Process(target=serve, args=(backend, variants, spec, child_end)))
        processes[-1].start()
        parent_end.recv()  # loaded: load each in turn, not all at once
        connections[backend] = parent_end
    for round_index in range(rounds):
        for backend, connection in connections.items():
            connection.send(True)
            connection.recv()
            print(f"round {round_index + 1}/{rounds}: {backend} done", flush=True)
    results = {}
    for backend, connection in connections.items():
        connection.send(False)
        results[backend] = connection.recv()
    for process in processes:
        process.join()
    return results


def median_s(rounds: list[dict], *keys: object) -> float:
    """Median over rounds of the seconds at `keys` (e.g. "fixed_s", 8 or "real_s", variant key, 8)."""
    return statistics.median(functools.reduce(operator.getitem, keys, round_) for round_ in rounds)


def parity(logits: np.ndarray, reference: np.ndarray) -> str:
    diff = logits - reference
    agree = (logits.argmax(-1) == reference.argmax(-1)).mean()
    return f"{np.abs(diff).max():.2g} / {np.linalg.norm(diff) / np.linalg.norm(reference):.2g} / {agree:.2%}"


def ratio_cells(values: list[float], ratios: list[float]) -> str:
    return " | ".join(f"{value:.2f} ({ratio:.2f}x)" for value, ratio in zip(values, ratios, strict=True))


def report(results: dict[str, Measured], variants: list[Variant], spec: dict, audio: dict[str, np.ndarray],
           references: dict[str, str], reference_logits: np.ndarray, config: Wav2Vec2Config) -> str:  # fmt: skip
    sizes, real_sizes = spec["batch_sizes"], spec["real_batch_sizes"]
    flops = flops_per_row(MAX_SAMPLES, config)
    eager = results[EAGER].rounds
    at = spec["share_at"]
    fixed_rows, real_rows, other_rows = [], [], []
    for backend, runs in results.items():
        fixed = [bs / median_s(runs.rounds, "fixed_s", bs) for bs in sizes]
        fixed_ratio = [median_s(eager, "fixed_s", bs) / median_s(runs.rounds, "fixed_s", bs) for bs in sizes]
        gflops = [at * flops.total / r["fixed_s"][at] / 1e9 for r in runs.rounds]
        shares = [g / r["peak_gflops"] for g, r in zip(gflops, runs.rounds, strict=True)]
        peak = statistics.median(r["peak_gflops"] for r in runs.rounds)
        fixed_rows.append(
            f"| {BACKEND_LABELS[backend]} | {ratio_cells(fixed, fixed_ratio)} | {statistics.median(gflops):.0f} | "
            f"{PRECISIONS.get(backend, 'fp32')} {peak:.0f} | {statistics.median(shares):.0%} "
            f"({min(shares):.0%}-{max(shares):.0%}) |"
        )
        other_rows.append(
            f"| {BACKEND_LABELS[backend]} | {runs.peak_rss_mib:.0f} | {runs.load_s:.1f} | "
            f"{parity(runs.parity_logits, reference_logits)} |"
        )
    audio_s = sum(len(a) for a in audio.values()) / SAMPLE_RATE
    for variant in variants:
        rounds = results[variant.backend].rounds
        real = [audio_s / median_s(rounds, "real_s", variant.key, bs) for bs in real_sizes]
        real_ratio = [median_s(eager, "real_s", EAGER, bs) / median_s(rounds, "real_s", variant.key, bs)
                      for bs in real_sizes]  # fmt: skip
        wer = ""
        if references:
            ids = sorted(references)
            hypotheses = rounds[-1]["hypotheses"][variant.key]
            wer = f" {corpus_wer([references[u] for u in ids], [hypotheses[u] for u in ids]):.4f} |"
        real_rows.append(f"| {variant.label} | {ratio_cells(real, real_ratio)} |{wer}")
    in_order = [len(audio[u]) for u in sorted(audio)]
    population = [length for _, length in sorted(read_lengths(DURATIONS).items())] if DURATIONS.is_file() else []
    padding = ", ".join(
        f"bs {bs}: {padding_share(in_order, bs):.0%}"
        + (f" (all of test-clean in id order: {padding_share(population, bs):.0%})" if population else "")
        for bs in real_sizes if bs > 1
    )  # fmt: skip
    return "\n".join([
        f"Fixed 100000-sample rows, forward only: samples/s (ratio to (a)), and at bs {at}: GFLOP/s (the fp32 model's "
        f"work, {flops.total / 1e9:.1f} GFLOP per row: {flops.convolution / 1e9:.1f} in convolutions, "
        f"{flops.matmul / 1e9:.1f} in matrix products), the matrix-product limit of the backend's own precision "
        f"(GFLOP/s of torch's 2048^3 product, measured in the same process just before and after), and the share "
        f"of it reached (median, lowest-highest of the rounds)\n",
        f"| backend | {' | '.join(f'bs {bs}' for bs in sizes)} | GFLOP/s | limit | share of limit |",
        f"| --- |{' --- |' * len(sizes)} --- | --- | --- |",
        *fixed_rows, "",
        f"Real lengths ({len(audio)} utterances of {spec['source']}, {audio_s:.1f} s), raw audio to text: audio "
        f"seconds per wall second (ratio to (a)). Padding in (a)'s batches: {padding or 'none at bs 1'}\n",
        f"| variant | {' | '.join(f'bs {bs}' for bs in real_sizes)} |{' WER |' if references else ''}",
        f"| --- |{' --- |' * (len(real_sizes) + bool(references))}",
        *real_rows, "",
        "Memory, start-up and parity with fp32 TorchScript on a fixed 2 x 100000 batch (max abs / relative L2 logit "
        "difference / share of frames with the same argmax)\n",
        "| backend | peak RSS MiB | load s | parity with torchscript |", "| --- | --- | --- | --- |", *other_rows,
    ])  # fmt: skip


def plot(results: dict[str, Measured], variants: list[Variant], spec: dict, audio_s: float, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.5), dpi=110)
    fixed_axes, real_axes = figure.subplots(1, 2)
    for backend, runs in results.items():
        sizes = spec["batch_sizes"]
        fixed_axes.plot(sizes, [bs / median_s(runs.rounds, "fixed_s", bs) for bs in sizes], marker="o",
                        label=BACKEND_LABELS[backend])  # fmt: skip
    for variant in variants:
        sizes, rounds = spec["real_batch_sizes"], results[variant.backend].rounds
        real_axes.plot(sizes, [audio_s / median_s(rounds, "real_s", variant.key, bs) for bs in sizes], marker="o",
                       label=variant.label)  # fmt: skip
    panels = (
        (fixed_axes, "fixed 100000-sample rows, forward only", "samples/s", spec["batch_sizes"]),
        (real_axes, "real test-clean lengths, audio to text", "audio seconds per wall second",
         spec["real_batch_sizes"]),
    )  # fmt: skip
    for axes, title, ylabel, sizes in panels:
        axes.set_xscale("log", base=2)
        axes.set_xticks(sizes, [str(bs) for bs in sizes])
        axes.set_xlabel("batch size")
        axes.set_ylabel(ylabel)
        axes.set_ylim(bottom=0)
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="batch sizes 1 and 8, 3 utterances, 2 rounds (a check, not figures)",
    )
    parser.add_argument("--model_dir", help="real weights: WER beside each variant (with --data)")
    parser.add_argument("--data", type=Path, help="a LibriSpeech split to transcribe instead of noise of real lengths")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4, 8, 16], help="fixed-row workload")
    parser.add_argument("--real_batch_sizes", type=int, nargs="+", default=[1, 8], help="real-length workload")
    parser.add_argument("--utterances", type=int, default=6, help="real-length sample size (one per length stratum)")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        choices=[v.key for v in VARIANTS],
        help=f"besides eager, which the ratios need (default: {' '.join(DEFAULT_VARIANTS[1:])})",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.batch_sizes, args.real_batch_sizes, args.utterances, args.rounds = [1, 8], [8], 3, 2
    variants = [v for v in VARIANTS if v.key in {EAGER, *args.variants}]
    plan: dict[str, list[Variant]] = {}  # backend -> the variants it runs on real lengths
    for variant in variants:
        plan.setdefault(variant.backend, []).append(variant)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cpu-throughput-") as tmp:
        workdir = Path(tmp)
        if args.model_dir is None:
            args.model_dir = str(save_random_base_model(workdir / "base_random"))
        model = load_ctc_model(args.model_dir)
        save_torchscript(trace(model, MAX_SAMPLES), workdir / "traced.pth")
        reference = create_backend("torchscript", DeviceOptions())
        reference.load(workdir / "traced.pth")
        reference_logits = run_batch(reference, fixed_batch(2), None)
        del reference
        audio, references = real_audio(args)
        np.savez(workdir / "audio.npz", **audio)
        for backend in plan:  # one-time work (ONNX export, quantisation) is cached, so workers load warm
            if backend != EAGER:
                load_backend(backend, workdir / "traced.pth", audio)
        audio_s = sum(len(a) for a in audio.values()) / SAMPLE_RATE
        spec = {"model_dir": args.model_dir, "traced": str(workdir / "traced.pth"), "audio": str(workdir / "audio.npz"),
                "batch_sizes": args.batch_sizes, "real_batch_sizes": args.real_batch_sizes,
                "share_at": 8 if 8 in args.batch_sizes else args.batch_sizes[-1],
                "source": str(args.data) if args.data else "noise of test-clean lengths",
                "utterance_ids": sorted(audio)}  # fmt: skip
        print(f"{len(audio)} utterances, {audio_s:.1f} s; {torch.get_num_threads()} threads")
        results = measure(plan, spec, args.rounds)
    args.output.mkdir(parents=True, exist_ok=True)
    table = report(results, variants, spec, audio, references, reference_logits, model.config)
    table += f"\n\nWhole benchmark: {time.perf_counter() - started:.0f} s on {torch.get_num_threads()} threads."
    save_table(table.splitlines(), args.output, "cpu_throughput.md")
    raw = {
        backend: {"load_s": measured.load_s, "peak_rss_mib": measured.peak_rss_mib,
                  "rounds": [{k: v for k, v in r.items() if k != "hypotheses"} for r in measured.rounds]}
        for backend, measured in results.items()
    }  # fmt: skip
    (args.output / "cpu_throughput.json").write_text(json.dumps({"spec": spec, "backends": raw}))
    plot(results, variants, spec, audio_s, args.output / "cpu_throughput.png")


if __name__ == "__main__":
    main()

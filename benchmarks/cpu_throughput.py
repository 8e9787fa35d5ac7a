"""CPU throughput of the shipped path and its faster variants, side by side with eager HF transformers.

    python3 -m benchmarks.cpu_throughput [--quick] [--model_dir DIR --data LibriSpeech/test-clean]

Times, in one run and on the same inputs, at base-960h's architecture size (random weights unless
--model_dir): (a) what a user would write instead, `model(processor(audio).input_values).logits` in eager
PyTorch fp32, batched with padding in dataset order; (b) compile.py's CPU path as shipped (TorchScript, the
static 100000-sample window, long utterances chunked); (c) the faster variants, each a compile.py backend,
with length buckets. Two workloads: fixed 100000-sample rows (the reference's measure: forward only, samples/s)
and real test-clean lengths (a fixed-seed sample of ../shared/data/librispeech-meta durations; raw audio to
text, batching and normalisation included: audio seconds per wall second). Each variant runs in its own
process (for its peak RSS), kept alive across rounds so later rounds run warm, as compile.py's timed runs do;
rounds alternate between variants; figures are medians over rounds. Writes
benchmarks/results/cpu_throughput.md, .png and .json (every round's timings).
"""

import argparse
import json
import multiprocessing
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from benchmarks.padding_waste import DURATIONS, read_lengths
from benchmarks.random_base_model import save_random_base_model
from wav2vec2_pipeline.audio import normalize, read_audio
from wav2vec2_pipeline.backends import DeviceOptions, create_backend
from wav2vec2_pipeline.ctc import greedy_decode
from wav2vec2_pipeline.export import save_torchscript, trace
from wav2vec2_pipeline.librispeech import find_utterances
from wav2vec2_pipeline.model import BASE_960H_VOCAB, MAX_SAMPLES, SAMPLE_RATE, load_ctc_model, num_frames
from wav2vec2_pipeline.planning import CHUNK, DEFAULT_BUCKET_SAMPLES, plan_bins, stitch
from wav2vec2_pipeline.preprocess import make_batch
from wav2vec2_pipeline.scoring import corpus_wer

RESULTS = Path(__file__).resolve().parent / "results"
EAGER = "eager"


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    backend: str
    """A compile.py backend name, or `eager` for the HF model itself."""
    windows: tuple[int, ...]
    """Row lengths for the real-length workload (one: the static window; several: buckets)."""


VARIANTS = (
    Variant(EAGER, "(a) eager HF transformers", EAGER, ()),
    Variant("torchscript", "(b) torchscript, as shipped", "torchscript", (MAX_SAMPLES,)),
    Variant("torchscript-frozen", "torchscript-frozen + buckets", "torchscript-frozen", DEFAULT_BUCKET_SAMPLES),
    Variant("onnxruntime", "onnxruntime + buckets", "onnxruntime", DEFAULT_BUCKET_SAMPLES),
    Variant("onnxruntime-int8", "onnxruntime-int8 + buckets (opt-in)", "onnxruntime-int8", DEFAULT_BUCKET_SAMPLES),
)


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


def sgemm_gflops(size: int = 2048, repeats: int = 7) -> float:
    """This machine's fp32 matrix-product rate through torch, with the threads torch uses."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


# ---- worker: one variant in its own process -------------------------------------------------------------------


def fixed_batch(batch_size: int) -> np.ndarray:
    return np.random.default_rng(batch_size).standard_normal((batch_size, MAX_SAMPLES), dtype=np.float32)


def eager_logits(model: torch.nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(batch)).logits.numpy()


class Runner:
    """Raw audio -> logits for one variant."""

    def __init__(self, variant: Variant, spec: dict) -> None:
        self.variant = variant
        self.feature_extractor = Wav2Vec2FeatureExtractor()
        self.config = Wav2Vec2Config.from_pretrained(spec["model_dir"])
        if variant.backend == EAGER:
            self.model = Wav2Vec2ForCTC.from_pretrained(spec["model_dir"]).eval()
        else:
            self.backend = create_backend(variant.backend, DeviceOptions())
            self.backend.load(Path(spec["traced"]))

    def forward(self, batch: np.ndarray) -> np.ndarray:
        if self.variant.backend == EAGER:
            return eager_logits(self.model, batch)
        return self.backend.to_host(self.backend.forward(self.backend.to_device(batch)))

    def transcribe(self, audio: dict[str, np.ndarray], batch_size: int) -> dict[str, str]:
        if self.variant.backend == EAGER:  # what a user writes: the processor pads each batch to its longest
            ids, texts = list(audio), {}
            for start in range(0, len(ids), batch_size):
                group = ids[start : start + batch_size]
                inputs = self.feature_extractor([audio[u] for u in group], sampling_rate=SAMPLE_RATE,
                                                padding=True, return_tensors="np")  # fmt: skip
                logits = self.forward(inputs.input_values.astype(np.float32))
                for row, utt_id in enumerate(group):
                    texts[utt_id] = greedy_decode(
                        logits[row, : num_frames(len(audio[utt_id]), self.config)], BASE_960H_VOCAB
                    )
            return texts
        lengths = {utt_id: len(samples) for utt_id, samples in audio.items()}
        stride = num_frames(max(self.variant.windows), self.config) // 6
        plan = plan_bins(lengths, batch_size, self.variant.windows, CHUNK, stride, self.config)
        normalized = {utt_id: normalize(samples, self.feature_extractor) for utt_id, samples in audio.items()}
        rows = []
        for bin_ in plan.bins:  # pad rows are not run, as compile.py does on the CPU
            logits = self.forward(make_batch(bin_, len(bin_.rows), normalized.__getitem__))
            rows += [(row.utt_id, row.keep, logits[index]) for index, row in enumerate(bin_.rows)]
        return {utt_id: greedy_decode(logits, BASE_960H_VOCAB) for utt_id, logits in stitch(rows).items()}


@dataclass
class Measured:
    """One variant's figures: per round timings, and what is measured once."""

    load_s: float
    rounds: list[dict] = field(default_factory=list)
    """Per round: `sgemm_gflops`, `fixed_s` and `real_s` (seconds by batch size), and the `hypotheses` of the
    real-length run."""
    peak_rss_mib: float = 0.0
    parity_logits: np.ndarray | None = None
    """Logits of a fixed 2 x 100000 batch, for parity with (b)."""


def peak_rss_mib() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over from the
    parent across fork and exec, so a worker would report the parent's peak when its own is lower."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def one_round(runner: Runner, audio: dict[str, np.ndarray], spec: dict) -> dict:
    result: dict = {"sgemm_gflops": sgemm_gflops(), "fixed_s": {}, "real_s": {}}  # side by side with the model
    for batch_size in spec["batch_sizes"]:
        batch = fixed_batch(batch_size)
        start = time.perf_counter()
        runner.forward(batch)
        result["fixed_s"][batch_size] = time.perf_counter() - start
    for batch_size in spec["real_batch_sizes"]:
        start = time.perf_counter()
        result["hypotheses"] = runner.transcribe(audio, batch_size)
        result["real_s"][batch_size] = time.perf_counter() - start
    return result


def serve(variant: Variant, spec: dict, connection: Connection) -> None:
    """A worker process: load the variant, then run a round each time the parent asks, until it says stop.
    Staying alive across rounds means rounds after the first run warm, as compile.py's timed runs do."""
    torch.manual_seed(0)
    start = time.perf_counter()
    runner = Runner(variant, spec)
    measured = Measured(load_s=time.perf_counter() - start)
    audio = dict(np.load(spec["audio"]))
    runner.forward(fixed_batch(1))  # warm-up
    connection.send(None)
    while connection.recv():
        measured.rounds.append(one_round(runner, audio, spec))
        connection.send(None)
    measured.parity_logits = runner.forward(fixed_batch(2))
    measured.peak_rss_mib = peak_rss_mib()
    connection.send(measured)


# ---- parent: inputs, rounds, report ---------------------------------------------------------------------------


def real_audio(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Real audio and transcripts from --data, or noise of real test-clean lengths (a fixed-seed sample)."""
    if args.data is not None:
        utterances = find_utterances(args.data)
        return {u.utt_id: read_audio(u.audio_path) for u in utterances}, {u.utt_id: u.transcript for u in utterances}
    lengths = read_lengths(DURATIONS)
    sample = random.Random(0).sample(sorted(lengths), args.utterances)
    rng = np.random.default_rng(0)
    return {u: (0.1 * rng.standard_normal(lengths[u])).astype(np.float32) for u in sample}, {}


def measure(variants: list[Variant], spec: dict, rounds: int) -> dict[Variant, Measured]:
    """Each variant in its own process (for its own peak RSS), all alive at once; rounds alternate between
    variants, so a slow spell of the machine hits them all alike."""
    context = multiprocessing.get_context("spawn")
    connections, processes = {}, []
    for variant in variants:
        parent_end, child_end = context.Pipe()
        processes.append(context.Process(target=serve, args=(variant, spec, child_end)))
        processes[-1].start()
        parent_end.recv()  # loaded: load each in turn, not all at once
        connections[variant] = parent_end
    for round_index in range(rounds):
        for variant, connection in connections.items():
            connection.send(True)
            connection.recv()
            print(f"round {round_index + 1}/{rounds}: {variant.label} done", flush=True)
    results = {}
    for variant, connection in connections.items():
        connection.send(False)
        results[variant] = connection.recv()
    for process in processes:
        process.join()
    return results


def median_of(measured: Measured, key: str, batch_size: int) -> float:
    return statistics.median(r[key][batch_size] for r in measured.rounds)


def parity(logits: np.ndarray, reference: np.ndarray) -> str:
    diff = logits - reference
    agree = (logits.argmax(-1) == reference.argmax(-1)).mean()
    return f"{np.abs(diff).max():.2g} / {np.linalg.norm(diff) / np.linalg.norm(reference):.2g} / {agree:.2%}"


def ratio_cells(values: list[float], ratios: list[float]) -> str:
    return " | ".join(f"{value:.2f} ({ratio:.2f}x)" for value, ratio in zip(values, ratios, strict=True))


def report(results: dict[Variant, Measured], spec: dict, audio_s: float,
           references: dict[str, str], config: Wav2Vec2Config) -> str:  # fmt: skip
    sizes, real_sizes = spec["batch_sizes"], spec["real_batch_sizes"]
    flops = flops_per_row(MAX_SAMPLES, config)
    eager = results[VARIANTS[0]]
    shipped = results[VARIANTS[1]].parity_logits
    at = 8 if 8 in sizes else sizes[-1]
    sgemm = statistics.median(r["sgemm_gflops"] for runs in results.values() for r in runs.rounds)
    fixed_rows, real_rows, other_rows = [], [], []
    for variant, runs in results.items():
        fixed = [bs / median_of(runs, "fixed_s", bs) for bs in sizes]
        fixed_ratio = [median_of(eager, "fixed_s", bs) / median_of(runs, "fixed_s", bs) for bs in sizes]
        gflops = [at * flops.total / r["fixed_s"][at] / 1e9 for r in runs.rounds]
        share = statistics.median(g / r["sgemm_gflops"] for g, r in zip(gflops, runs.rounds, strict=True))
        fixed_rows.append(
            f"| {variant.label} | {ratio_cells(fixed, fixed_ratio)} | {statistics.median(gflops):.0f} ({share:.0%}) |"
        )
        real = [audio_s / median_of(runs, "real_s", bs) for bs in real_sizes]
        real_ratio = [median_of(eager, "real_s", bs) / median_of(runs, "real_s", bs) for bs in real_sizes]
        real_rows.append(f"| {variant.label} | {ratio_cells(real, real_ratio)} |")
        wer = None
        if references:
            ids = sorted(references)
            wer = corpus_wer([references[u] for u in ids], [runs.rounds[-1]["hypotheses"][u] for u in ids])
        other_rows.append(
            f"| {variant.label} | {runs.peak_rss_mib:.0f} | {runs.load_s:.1f} | "
            f"{parity(runs.parity_logits, shipped)} | {'n/a' if wer is None else f'{wer:.4f}'} |"
        )
    return "\n".join([
        f"Fixed 100000-sample rows, forward only: samples/s (ratio to (a)), and GFLOP/s at bs {at} (share of this "
        f"machine's sgemm rate measured in the same process and round; median {sgemm:.0f} GFLOP/s; "
        f"{flops.total / 1e9:.1f} GFLOP per row: "
        f"{flops.convolution / 1e9:.1f} in convolutions, {flops.matmul / 1e9:.1f} in matrix products)\n",
        f"| variant | {' | '.join(f'bs {bs}' for bs in sizes)} | GFLOP/s |", f"| --- |{' --- |' * len(sizes)} --- |",
        *fixed_rows, "",
        f"Real lengths ({len(spec['utterance_ids'])} utterances of {spec['source']}, {audio_s:.1f} s), raw audio to "
        "text: audio seconds per wall second (ratio to (a))\n",
        f"| variant | {' | '.join(f'bs {bs}' for bs in real_sizes)} |", f"| --- |{' --- |' * len(real_sizes)}",
        *real_rows, "",
        "Memory, start-up and parity with (b) on a fixed 2 x 100000 batch (max abs / relative L2 logit difference / "
        "share of frames with the same argmax)\n",
        "| variant | peak RSS MiB | load s | parity with (b) | WER |", "| --- | --- | --- | --- | --- |", *other_rows,
    ])  # fmt: skip


def plot(results: dict[Variant, Measured], spec: dict, audio_s: float, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.5), dpi=110)
    panels = (
        ("fixed 100000-sample rows, forward only", "samples/s", spec["batch_sizes"], "fixed_s", None),
        ("real test-clean lengths, audio to text", "audio seconds per wall second", spec["real_batch_sizes"],
         "real_s", audio_s),
    )  # fmt: skip
    for axes, (title, ylabel, sizes, key, seconds) in zip(figure.subplots(1, 2), panels, strict=True):
        for variant, runs in results.items():
            work = [seconds or bs for bs in sizes]
            axes.plot(sizes, [w / median_of(runs, key, bs) for w, bs in zip(work, sizes, strict=True)],
                      marker="o", label=variant.label)  # fmt: skip
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
        help="batch sizes 1 and 8, 3 utterances, 2 rounds (a check, not figures: half the rounds run cold)",
    )
    parser.add_argument("--model_dir", help="real weights: WER beside each variant (with --data)")
    parser.add_argument("--data", type=Path, help="a LibriSpeech split to transcribe instead of noise of real lengths")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4, 8, 16], help="fixed-row workload")
    parser.add_argument("--real_batch_sizes", type=int, nargs="+", default=[1, 8], help="real-length workload")
    parser.add_argument("--utterances", type=int, default=4, help="real-length sample size")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[v.key for v in VARIANTS if v.key != "torchscript-frozen"],
        choices=[v.key for v in VARIANTS],
        help="which to run besides eager and torchscript, which the ratios and parity need "
        "(default: all but torchscript-frozen, which measured no faster)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.batch_sizes, args.real_batch_sizes, args.utterances, args.rounds = [1, 8], [8], 3, 2
    variants = [v for v in VARIANTS if v.key in {EAGER, "torchscript", *args.variants}]

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="cpu-throughput-"))
    if args.model_dir is None:
        args.model_dir = str(save_random_base_model(workdir / "base_random"))
    model = load_ctc_model(args.model_dir)
    save_torchscript(trace(model, MAX_SAMPLES), workdir / "traced.pth")
    for variant in variants:  # one-time work (ONNX export, quantisation) is cached, so workers load warm
        if variant.backend != EAGER:
            create_backend(variant.backend, DeviceOptions()).load(workdir / "traced.pth")
    audio, references = real_audio(args)
    np.savez(workdir / "audio.npz", **audio)
    audio_s = sum(len(a) for a in audio.values()) / SAMPLE_RATE
    spec = {"model_dir": args.model_dir, "traced": str(workdir / "traced.pth"), "audio": str(workdir / "audio.npz"),
            "batch_sizes": args.batch_sizes, "real_batch_sizes": args.real_batch_sizes,
            "source": str(args.data) if args.data else "noise of test-clean lengths",
            "utterance_ids": sorted(audio)}  # fmt: skip
    print(f"{len(audio)} utterances, {audio_s:.1f} s; {torch.get_num_threads()} threads")
    results = measure(variants, spec, args.rounds)
    args.output.mkdir(parents=True, exist_ok=True)
    table = report(results, spec, audio_s, references, model.config)
    table += f"\n\nWhole benchmark: {time.perf_counter() - started:.0f} s on {torch.get_num_threads()} threads."
    (args.output / "cpu_throughput.md").write_text(table + "\n")
    raw = {
        variant.key: {"load_s": measured.load_s, "peak_rss_mib": measured.peak_rss_mib,
                      "rounds": [{k: v for k, v in r.items() if k != "hypotheses"} for r in measured.rounds]}
        for variant, measured in results.items()
    }  # fmt: skip
    (args.output / "cpu_throughput.json").write_text(json.dumps({"spec": spec, "variants": raw}))
    plot(results, spec, audio_s, args.output / "cpu_throughput.png")
    print(table)


if __name__ == "__main__":
    main()

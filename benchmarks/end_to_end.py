"""compile.py end to end on each CPU backend against eager HF fp32 running each utterance alone, in one run.

    python3 -m benchmarks.end_to_end [--bins 20 --rounds 3 --backends auto openvino ...]
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python3 -m benchmarks.end_to_end   # a lower CPU class (device.ISA_CAP)

Base-960h's architecture size with random weights (speed only: CER of each path is the accuracy benchmark's),
on noise of real test-clean lengths (the utterances of bins spread over the plan of all of test-clean, from
../shared/data/librispeech-meta, so each bin is as tightly packed as in a full run) written as a LibriSpeech
split of FLAC files. The pipeline side is the README's full run: wav2vec2_preprocess.py with its defaults
(whole utterances, batch size 8) once, then `compile.py --overwrite` per backend and round, a process each as a
user runs it. By default every CPU backend that runs here is timed (ONNX Runtime's not under an
ONEDNN_MAX_CPU_ISA cap, which it does not honour). Its figure is the stage's
wall time from the logits manifest (every bin read, run and written; model loading, one-time conversions and
the timed runs left out, each reported apart). The eager side is what a user writes instead: read each FLAC,
normalise it with the feature extractor, `model(x).logits` alone (no padding: eager's best case on a CPU), in
this process. Rounds alternate between the sides, so a slow spell of this shared machine hits all alike;
figures are medians with the range over rounds. Writes benchmarks/results/end_to_end-<CPU class>.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from benchmarks.padding_waste import DURATIONS, read_lengths
from benchmarks.random_base_model import save_random_base_model
from benchmarks.report import class_name, save_table
from wav2vec2_pipeline.audio import normalize
from wav2vec2_pipeline.backends import resolve
from wav2vec2_pipeline.device import ISA_CAP
from wav2vec2_pipeline.model import SAMPLE_RATE
from wav2vec2_pipeline.planning import Layout, plan_bins
from wav2vec2_pipeline.registry import BACKENDS

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
EAGER = "eager HF fp32, each utterance alone"
BATCH_SIZE = 8
CANDIDATES = ("openvino", "openvino-bf16", "openvino-int8", "onnxruntime-int8")
"""The paths `auto` chooses among on a CPU; onnxruntime fp32 and torchscript (slower than openvino fp32 on every CPU
measured) run with --backends."""


def bins_of_a_full_run(lengths: dict[str, int], count: int) -> dict[str, int]:
    """The utterances of `count` bins spread evenly over the plan preprocess makes of all of test-clean with its
    defaults: rows as alike in length as the full run's, so its padding is the full run's."""
    layout = Layout.whole()
    bins = plan_bins(lengths, BATCH_SIZE, layout).bins
    picked = [bins[round(i)] for i in np.linspace(0, len(bins) - 1, count)]
    return {row.utt_id: lengths[row.utt_id] for bin_ in picked for row in bin_.rows}


def write_split(root: Path, lengths: dict[str, int]) -> Path:
    """Noise of the given lengths as a LibriSpeech split (`<speaker>/<chapter>/<id>.flac` and transcripts)."""
    rng = np.random.default_rng(0)
    chapters: dict[Path, list[str]] = {}
    for utt_id, num_samples in lengths.items():
        speaker, chapter, _ = utt_id.split("-")
        folder = root / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        noise = np.clip(0.1 * rng.standard_normal(num_samples), -1, 1)
        soundfile.write(folder / f"{utt_id}.flac", noise, SAMPLE_RATE, subtype="PCM_16")
        chapters.setdefault(folder, []).append(f"{utt_id} NOISE")
    for folder, lines in chapters.items():
        speaker, chapter = folder.parts[-2:]
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(sorted(lines)) + "\n")
    return root


def script(name: str, *args: object) -> float:
    """Run a stage as a user would; its wall time, start-up included."""
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / name), *map(str, args)], check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def eager_alone(model: Wav2Vec2ForCTC, fe: Wav2Vec2FeatureExtractor, files: list[Path]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for path in files:
            samples, _ = soundfile.read(path, dtype="float32")
            model(torch.from_numpy(normalize(samples, fe))[None]).logits.argmax(-1)
    return time.perf_counter() - start


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bins", type=int, default=20, help="bins of the full test-clean plan to run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", nargs="+", help="default: each of `auto`'s candidates that runs here")
    parser.add_argument("--preprocess_args", nargs=argparse.REMAINDER, default=[],
                        help="preprocess options instead of its defaults, e.g. --preprocess_args --max_samples 100000 "
                             "(the earlier recommended layout); last, as they take the rest of the line")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.backends is None:
        runs_here = [b for b in CANDIDATES if BACKENDS.load(b).available()]
        args.backends = [b for b in runs_here if not (os.environ.get(ISA_CAP) and "onnx" in b)]
    started = time.perf_counter()
    sample = bins_of_a_full_run(read_lengths(DURATIONS), args.bins)
    audio_s = sum(sample.values()) / SAMPLE_RATE
    seconds: dict[str, list[float]] = {EAGER: [], **{b: [] for b in args.backends}}
    one_time, whole = {}, {b: [] for b in args.backends}
    with tempfile.TemporaryDirectory(prefix="end-to-end-") as tmp:
        work = Path(tmp)
        split = write_split(work / "LibriSpeech" / "test-clean", sample)
        model_dir = save_random_base_model(work / "model")
        script("wav2vec2_pth2ts.py", "--pytorch_model_dir", model_dir, "--output", work / "traced.pth")
        preprocess_s = script("wav2vec2_preprocess.py", "--input", split, "--batch_size", BATCH_SIZE,
                              "--output", work / "in", "--data_path", work / "data", *args.preprocess_args)  # fmt: skip

        def compile_(backend: str) -> tuple[float, float]:
            """(whole process, stage) seconds of one compile.py run."""
            out = work / "out" / backend
            wall = script("compile.py", "--batch_size", BATCH_SIZE, "--input_path", work / "in", "--output_path",
                          out, "--torchscript_path", work / "traced.pth", "--backend", backend, "--overwrite",
                          "--warmup_runs", 0, "--timed_runs", 1)  # fmt: skip
            return wall, json.loads((out / "manifest.json").read_text())["stage"]["wall_s"]

        for backend in args.backends:  # one-time work (ONNX export, quantisation) is cached beside traced.pth
            one_time[backend] = compile_(backend)[0]
        model = Wav2Vec2ForCTC.from_pretrained(model_dir).eval()
        fe = Wav2Vec2FeatureExtractor.from_pretrained(model_dir)
        files = sorted(split.rglob("*.flac"))
        eager_alone(model, fe, files[:1])  # warm-up
        for round_index in range(args.rounds):
            seconds[EAGER].append(eager_alone(model, fe, files))
            for backend in args.backends:
                wall, stage = compile_(backend)
                whole[backend].append(wall)
                seconds[backend].append(stage)
            print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    eager = seconds[EAGER]
    lines = [
        f"{len(sample)} utterances of test-clean lengths ({audio_s:.1f} s of audio, noise, in {args.bins} bins), "
        f"base-size model (random weights), batch size {BATCH_SIZE}, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds; preprocess (once, "
        f"{' '.join(args.preprocess_args) or 'the defaults: whole utterances'}): {preprocess_s:.1f} s. "
        f"`auto` here is {resolve('auto')}. Eager's environment: {ISA_CAP}={os.environ.get(ISA_CAP, '(unset)')}, "
        f"MKL_ENABLE_INSTRUCTIONS={os.environ.get('MKL_ENABLE_INSTRUCTIONS', '(unset)')}.",
        "",
        "| path | audio s per wall s, median (range) | x eager, median (range) | x eager, preprocess included | "
        "compile.py process s | first run s |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {EAGER} | {spread([audio_s / s for s in eager])} | 1.00 | 1.00 | | |",
    ]
    for backend in args.backends:
        ratios = [e / s for e, s in zip(eager, seconds[backend], strict=True)]  # same round: side by side
        with_preprocess = [e / (s + preprocess_s) for e, s in zip(eager, seconds[backend], strict=True)]
        lines.append(
            f"| compile.py --backend {backend}{' (`auto` here)' if backend == resolve('auto') else ''} | "
            f"{spread([audio_s / s for s in seconds[backend]])} | "
            f"{spread(ratios)} | {spread(with_preprocess)} | {statistics.median(whole[backend]):.1f} | "
            f"{one_time[backend]:.1f} |"
        )
    lines += ["", f"Whole benchmark: {time.perf_counter() - started:.0f} s."]
    layout = "-".join(arg.strip("-") for arg in args.preprocess_args)
    save_table(lines, args.output, f"end_to_end-{class_name()}{'-' + layout if layout else ''}.md")


if __name__ == "__main__":
    main()

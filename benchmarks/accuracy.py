"""What layout and backend do to accuracy, on a model really trained: CER and WER of each condition.

    python3 -m benchmarks.accuracy [--model_dir DIR --data DIR --batch_sizes 1 8 16]
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python3 -m benchmarks.accuracy   # OpenVINO's kernels of a lower CPU class
    qemu-x86_64 -cpu EPYC-Rome "$(python3 -c 'import sys; print(sys.executable)')" -m benchmarks.accuracy \
        --as_class avx2 --batch_sizes 8 --whole_only --backends openvino openvino-int8 onnxruntime-int8
        # every runtime's own AVX2 kernels (qemu's CPUID: AVX2, no AVX-512); hours of 2 cores for all rows

Defaults: the small model trained on espeak-ng speech (../shared/models/wav2vec2-espeak-small) and its test set
(../shared/data/espeak-test: speaker 8001 in voices it was trained on, 8002 in voices it never heard, 8003 15-25 s
utterances). The reference is eager HF fp32 on each utterance alone (no padding, no chunks); every other row
runs the pipeline's own in-memory core (`core.transcribe`: the rows preprocess would write, run as compile.py
runs them, stitched and decoded as postprocess does) on a compile.py backend: the default layout (whole
utterances) at each batch size, and the Ascend guide's static window and `--layout bucket` at the first batch
size of 8 or more. `--as_class` runs the pipeline as on a CPU of that class (device.CLASS_EXAMPLES's flags
instead of /proc/cpuinfo's), for an emulator whose CPUID is that class's while /proc/cpuinfo is the host's. Its
absolute error rates are poor (a 1.25 M-parameter model, 95 minutes of training): read the
differences between rows, never the rates as base-960h's. Writes benchmarks/results/accuracy-<CPU class>.md.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from benchmarks.cpu_throughput import INT8_FP32, create_variant
from benchmarks.report import class_name, save_table
from wav2vec2_pipeline import backends, calibration, device
from wav2vec2_pipeline.audio import normalize, read_audio
from wav2vec2_pipeline.core import transcribe
from wav2vec2_pipeline.ctc import greedy_decode
from wav2vec2_pipeline.errors import ArgumentParser, PipelineError, run_cli
from wav2vec2_pipeline.export import check_trace, save_torchscript, trace
from wav2vec2_pipeline.librispeech import find_utterances
from wav2vec2_pipeline.model import MAX_SAMPLES, load_geometry, load_vocab
from wav2vec2_pipeline.planning import CHUNK, DEFAULT_BUCKET_SAMPLES, SKIP, Layout
from wav2vec2_pipeline.registry import BACKENDS as BACKEND_CLASSES
from wav2vec2_pipeline.scoring import UPPER, corpus_cer, corpus_wer, text_normalizer

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESULTS = Path(__file__).resolve().parent / "results"
SETS = {"8001": "seen voices, <= 6.2 s", "8002": "unseen voices, <= 6.2 s", "8003": "15-25 s"}
BACKENDS = ("torchscript", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16", "openvino-int8", INT8_FP32)


def available(name: str) -> bool:
    return BACKEND_CLASSES.load("openvino-int8" if name == INT8_FP32 else name).available()


def eager_alone(model: Wav2Vec2ForCTC, audio: dict[str, np.ndarray], fe, vocab) -> dict[str, str]:
    """The reference: each utterance alone through the eager HF model, as a user would write it."""
    texts = {}
    with torch.inference_mode():
        for utt_id, samples in audio.items():
            logits = model(torch.from_numpy(normalize(samples, fe))[None]).logits[0].numpy()
            texts[utt_id] = greedy_decode(logits, vocab)
    return texts


def rates(references: dict[str, str], hypotheses: dict[str, str], ids: list[str]) -> str:
    normalize_text = text_normalizer(UPPER)
    refs = [normalize_text(references[u]) for u in ids]
    hyps = [normalize_text(hypotheses.get(u, "")) for u in ids]
    return f"{100 * corpus_cer(refs, hyps):.1f} / {100 * corpus_wer(refs, hyps):.1f}"


def main() -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, default=SHARED / "models" / "wav2vec2-espeak-small")
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "espeak-test" / "LibriSpeech" / "test-clean")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, help="default: each that runs here")
    parser.add_argument("--whole_only", action="store_true", help="only the default layout's rows")
    parser.add_argument("--as_class", choices=sorted(device.CLASS_EXAMPLES),
                        help="take this class's flags (under an emulator whose CPUID is that class's)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="dir for accuracy-<CPU class>.md")
    args = parser.parse_args()
    if min(args.batch_sizes) < 1:
        parser.error(f"--batch_sizes must be at least 1, got {min(args.batch_sizes)}")
    file_name = f"accuracy-{class_name()}.md"
    seen_as = ""
    if args.as_class:
        flags = device.CLASS_EXAMPLES[args.as_class]
        backends.cpu_flags = lambda: flags  # what decides each backend's availability and int8's float precision
        file_name = f"accuracy-{args.as_class}-as-class.md"
        if not available("openvino"):
            raise PipelineError("--as_class names the CPU OpenVINO saw, and needs openvino: pip install -r "
                                "requirements.txt")  # fmt: skip
        import openvino

        cpu = openvino.Core().get_property("CPU", "FULL_DEVICE_NAME")
        seen_as = f" Run with --as_class {args.as_class} (flags {' '.join(sorted(flags))}); OpenVINO saw a CPU '{cpu}'."
    start = time.perf_counter()
    utterances = find_utterances(args.data)
    audio = {u.utt_id: read_audio(u.audio_path) for u in utterances}
    references = {u.utt_id: u.transcript for u in utterances}
    by_set: dict[str, list[str]] = {}
    for utt_id in sorted(audio):  # one column per speaker dir: the espeak set's speakers are its conditions
        by_set.setdefault(utt_id.split("-")[0], []).append(utt_id)
    fe = Wav2Vec2FeatureExtractor.from_pretrained(args.model_dir)
    geometry = load_geometry(args.model_dir)
    vocab = load_vocab(args.model_dir, geometry)
    model = Wav2Vec2ForCTC.from_pretrained(args.model_dir).eval()
    rows = {"(ref) eager HF fp32, each utterance alone": eager_alone(model, audio, fe, vocab)}
    whole = Layout.whole(geometry)
    others = next((bs for bs in args.batch_sizes if bs >= 8), max(args.batch_sizes))
    layouts = [(f"whole (default), bs {bs}", whole, bs) for bs in args.batch_sizes]
    if not args.whole_only:
        layouts += [
            (f"static window (Ascend guide), bs {others}", Layout((MAX_SAMPLES,), SKIP, geometry=geometry), others),
            (f"static window, chunk, bs {others}", Layout((MAX_SAMPLES,), CHUNK, geometry=geometry), others),
            (f"bucket, bs {others}", Layout(DEFAULT_BUCKET_SAMPLES, CHUNK, geometry=geometry), others),
        ]
    chosen = args.backends or BACKENDS
    with tempfile.TemporaryDirectory() as tmp:
        traced_path = Path(tmp) / "traced.pth"
        traced = trace(model, MAX_SAMPLES)
        check_trace(model, traced, MAX_SAMPLES)
        save_torchscript(traced, traced_path)
        for name in [b for b in chosen if available(b)]:  # bf16: only on a CPU with it
            backend = None
            for label, layout, batch_size in layouts:
                if backend is None or backend.needs_calibration:  # calibrated on the rows of this run
                    backend = create_variant(name, lambda layout=layout, bs=batch_size: calibration.of_audio(
                        audio, batch_size=bs, layout=layout, feature_extractor=fe))  # fmt: skip
                    backend.load(traced_path)
                rows[f"{name}, {label}"] = transcribe(audio, backend, batch_size=batch_size, layout=layout,
                                                      feature_extractor=fe, vocab=vocab)  # fmt: skip
    header = " | ".join(f"{name} ({SETS[name]})" if name in SETS else name for name in by_set)
    lines = [
        f"CER / WER in %, greedy CTC; model {args.model_dir.name}, data {args.data}. A skipped utterance (static "
        f"window, longer than 6.25 s) counts as an empty transcript.{seen_as}",
        "",
        f"| condition | {header} |",
        "| --- |" + " --- |" * len(by_set),
    ]
    for label, hypotheses in rows.items():
        lines.append(f"| {label} | " + " | ".join(rates(references, hypotheses, ids) for ids in by_set.values()) + " |")
    not_run = [b for b in chosen if not available(b)]
    lines += ["", f"Not run on this machine: {', '.join(not_run)}." if not_run else "",
              f"Whole benchmark: {time.perf_counter() - start:.0f} s."]  # fmt: skip
    save_table(lines, args.output, file_name)


if __name__ == "__main__":
    run_cli(main)

"""Beam search with an n-gram LM against greedy decoding, on a model really trained: the LM weights tuned on one
speaker set and reported on the others, and decoding speed beside the model's.

    python3 -m benchmarks.beam_search [--lm FILE] [--model_dir DIR --data DIR]

Defaults: the small model trained on espeak-ng speech and its test set (speaker 8001: voices it was trained on,
where the weights are tuned; 8002: voices it never heard; 8003: 15-25 s utterances), and a 3-gram LM built here
(benchmarks/ngram.py) from LibriSpeech dev-clean's transcripts only, the model's training text (none of the test
sentences). Logits come from eager HF fp32 on each utterance alone; every decoder reads the same logits. The
model's speed is a base-size wav2vec2 (random weights: the cost does not depend on them) through `--backend`
(default auto) on the same audio, laid out as the README's run, so the ratio is the one a user of base-960h gets
on this machine. Writes benchmarks/results/beam_search.md.
"""

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from benchmarks.ngram import write_arpa
from benchmarks.random_base_model import save_random_base_model
from benchmarks.report import save_table
from wav2vec2_pipeline import calibration
from wav2vec2_pipeline.audio import normalize, read_audio
from wav2vec2_pipeline.backends import create_backend
from wav2vec2_pipeline.core import transcribe
from wav2vec2_pipeline.decoding import BeamOptions, Decoded, DecodingOptions, decode_all, make_decoder
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.export import save_torchscript, trace
from wav2vec2_pipeline.librispeech import find_utterances
from wav2vec2_pipeline.model import MAX_SAMPLES, SAMPLE_RATE, load_geometry, load_vocab
from wav2vec2_pipeline.planning import CHUNK, Layout
from wav2vec2_pipeline.scoring import UPPER, corpus_cer, corpus_wer, text_normalizer

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESULTS = Path(__file__).resolve().parent / "results"
TUNE_ON = "8001"
LM_WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0)
WORD_SCORES = (-3.0, -2.0, -1.0, 0.0, 1.0)


def logits_alone(model_dir: Path, audio: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fe = Wav2Vec2FeatureExtractor.from_pretrained(model_dir)
    model = Wav2Vec2ForCTC.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        return {u: model(torch.from_numpy(normalize(a, fe))[None]).logits[0].numpy() for u, a in audio.items()}


def decode(options: DecodingOptions, vocab, logits: dict[str, np.ndarray], ids: list[str]) -> tuple[dict, Decoded]:
    timing = Decoded()
    decoder = make_decoder(options, vocab)
    texts = {u: " ".join(w.word for w in words)
             for u, words in decode_all(decoder, ((u, logits[u]) for u in ids), options.beam.workers, timing)}
    return texts, timing


def rates(references: dict[str, str], texts: dict[str, str], ids: list[str]) -> tuple[float, float]:
    normalize_text = text_normalizer(UPPER)
    refs = [normalize_text(references[u]) for u in ids]
    hyps = [normalize_text(texts.get(u, "")) for u in ids]
    return 100 * corpus_wer(refs, hyps), 100 * corpus_cer(refs, hyps)


def model_speed(audio: dict[str, np.ndarray], backend_name: str, work: Path) -> tuple[str, float]:
    """(backend, audio seconds per second) of a base-size model on `audio`, as the README's run lays it out."""
    model_dir = save_random_base_model(work / "base")
    traced = work / "base.pth"
    save_torchscript(trace(Wav2Vec2ForCTC.from_pretrained(model_dir).eval(), MAX_SAMPLES), traced)
    fe = Wav2Vec2FeatureExtractor()
    layout = Layout((MAX_SAMPLES,), CHUNK, exact=True)
    backend = create_backend(backend_name, DeviceOptions(),
                             lambda: calibration.of_audio(audio, batch_size=8, layout=layout, feature_extractor=fe))
    backend.load(traced)
    start = time.perf_counter()
    transcribe(audio, backend, batch_size=8, layout=layout, feature_extractor=fe)
    seconds = sum(len(a) for a in audio.values()) / SAMPLE_RATE
    return backend.name, seconds / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, default=SHARED / "models" / "wav2vec2-espeak-small")
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "espeak-test" / "LibriSpeech" / "test-clean")
    meta = SHARED / "data" / "librispeech-meta"
    parser.add_argument("--lm_text", type=Path, default=meta / "dev-clean.all.trans.txt",
                        help="`<id> <TRANSCRIPT>` lines the 3-gram is built from (not the test sentences)")
    parser.add_argument("--lm", type=Path, help="an LM of your own instead (ARPA or KenLM binary)")
    parser.add_argument("--beam_size", type=int, default=BeamOptions.beam_size)
    parser.add_argument("--beam_size_token", type=int, default=BeamOptions.beam_size_token)
    parser.add_argument("--backend", default="auto", help="the model's backend for the speed comparison")
    parser.add_argument("--speed_set", default=TUNE_ON, help="speaker set the model's speed is measured on")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    utterances = find_utterances(args.data)
    audio = {u.utt_id: read_audio(u.audio_path) for u in utterances}
    references = {u.utt_id: u.transcript for u in utterances}
    by_set: dict[str, list[str]] = {}
    for utt_id in sorted(audio):
        by_set.setdefault(utt_id.split("-")[0], []).append(utt_id)
    vocab = load_vocab(args.model_dir, load_geometry(args.model_dir))
    logits = logits_alone(args.model_dir, audio)
    with tempfile.TemporaryDirectory() as tmp:
        lm = args.lm
        if lm is None:
            sentences = [line.split(" ", 1)[1] for line in args.lm_text.read_text().splitlines() if " " in line]
            lm = write_arpa(sentences, Path(tmp) / "dev-clean.3gram.arpa")
        grid = {}
        for lm_weight, word_score in itertools.product(LM_WEIGHTS, WORD_SCORES):
            beam = BeamOptions(lm=lm, lm_weight=lm_weight, word_score=word_score, beam_size=args.beam_size,
                               beam_size_token=args.beam_size_token)  # fmt: skip
            texts, _ = decode(DecodingOptions(decoder="beam", beam=beam), vocab, logits, by_set[TUNE_ON])
            grid[lm_weight, word_score] = rates(references, texts, by_set[TUNE_ON])
        best = min(grid, key=lambda key: grid[key])
        lines = [f"Tuning on speaker set {TUNE_ON} (WER / CER %, beam {args.beam_size}, {args.beam_size_token} tokens "
                 "per frame):", "",
                 "| lm_weight \\ word_score | " + " | ".join(map(str, WORD_SCORES)) + " |",
                 "| --- |" + " --- |" * len(WORD_SCORES)]  # fmt: skip
        for lm_weight in LM_WEIGHTS:
            cells = [f"{grid[lm_weight, w][0]:.1f} / {grid[lm_weight, w][1]:.1f}" for w in WORD_SCORES]
            lines.append(f"| {lm_weight} | " + " | ".join(cells) + " |")
        beam = BeamOptions(lm=lm, lm_weight=best[0], word_score=best[1], beam_size=args.beam_size,
                           beam_size_token=args.beam_size_token)  # fmt: skip
        conditions = {"greedy": DecodingOptions(),
                      f"beam {args.beam_size}, lm_weight {best[0]}, word_score {best[1]}": DecodingOptions(
                          decoder="beam", beam=beam)}  # fmt: skip
        lines += ["", "WER / CER % by speaker set, and decoding speed (audio s per s, every set):", "",
                  "| decoder | " + " | ".join(by_set) + " | decoding audio s/s |",
                  "| --- |" + " --- |" * (len(by_set) + 1)]  # fmt: skip
        every = sorted(audio)
        seconds = sum(len(audio[u]) for u in every) / SAMPLE_RATE
        for label, options in conditions.items():
            speeds = []
            for _ in range(3):  # the whole set thrice: the median, and the spread on a shared machine
                texts, timing = decode(options, vocab, logits, every)
                speeds.append(seconds / timing.seconds)
            cells = [" / ".join(f"{x:.1f}" for x in rates(references, texts, ids)) for ids in by_set.values()]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {statistics.median(speeds):.0f} "
                         f"({min(speeds):.0f}-{max(speeds):.0f}), {timing.workers} process(es) |")
        speed_audio = {u: audio[u] for u in by_set[args.speed_set]}
        backend, model_rate = model_speed(speed_audio, args.backend, Path(tmp))
    lines += ["", f"The model for comparison: base-size wav2vec2 on {backend} (README layout, batch size 8), "
              f"{model_rate:.1f} audio s per s on set {args.speed_set}."]  # fmt: skip
    save_table(lines, args.output, "beam_search.md")


if __name__ == "__main__":
    main()

"""How much zero padding to the static window changes an utterance's logits.

base-960h has no attention mask and its feature encoder's first GroupNorm normalises over time, padding
included, so an utterance padded to 100000 samples gets other logits than the same utterance alone.
`python3 -m benchmarks.padding_effect [--model_dir DIR]`: without a dir, a tiny random model (as in the
tests), whose numbers show the mechanism, not base-960h's size of it.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2ForCTC

from benchmarks.random_base_model import save_tiny_model
from wav2vec2_pipeline.audio import fit_length, normalize, read_audio
from wav2vec2_pipeline.librispeech import find_utterances
from wav2vec2_pipeline.model import MAX_SAMPLES, load_feature_extractor

MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech-mini" / "LibriSpeech"


def compare(model: Wav2Vec2ForCTC, audio: np.ndarray, window: int) -> tuple[float, float, float]:
    """(max abs difference, relative L2 difference, share of frames whose best token changes)."""
    with torch.no_grad():
        alone = model(torch.from_numpy(audio)[None]).logits[0].numpy()
        padded = model(torch.from_numpy(fit_length(audio, window))[None]).logits[0, : len(alone)].numpy()
    diff = padded - alone
    changed = float((padded.argmax(1) != alone.argmax(1)).mean())
    return float(np.abs(diff).max()), float(np.linalg.norm(diff) / np.linalg.norm(alone)), changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", type=Path, help="a Wav2Vec2ForCTC dir (default: a tiny random model)")
    parser.add_argument("--data", type=Path, default=MINI / "test-clean")
    parser.add_argument("--window", type=int, default=MAX_SAMPLES)
    args = parser.parse_args()
    model_dir = args.model_dir or save_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    model = Wav2Vec2ForCTC.from_pretrained(model_dir).eval()
    feature_extractor = load_feature_extractor(model_dir)
    print(f"model: {args.model_dir or 'tiny random (benchmarks/random_base_model.py)'}; window {args.window} samples\n")
    print("| utterance | seconds | padding | max abs diff | rel. L2 diff | frames whose argmax changes |")
    print("| --- | --- | --- | --- | --- | --- |")
    for utterance in find_utterances(args.data):
        audio = normalize(read_audio(utterance.audio_path), feature_extractor)
        if len(audio) >= args.window:
            continue
        max_abs, rel_l2, changed = compare(model, audio, args.window)
        print(f"| {utterance.utt_id} | {len(audio) / 16_000:.2f} | {1 - len(audio) / args.window:.0%} | "
              f"{max_abs:.3g} | {rel_l2:.3g} | {changed:.1%} |")  # fmt: skip


if __name__ == "__main__":
    main()

"""Save a randomly initialised model of base-960h's size and files, for timing without the real weights.

`python3 -m benchmarks.random_base_model --output DIR`. Its transcripts are noise: use it for speed only.
"""

import argparse
from pathlib import Path

from transformers import Wav2Vec2Config

from tests.tiny_model import save_random_model
from wav2vec2_pipeline.model import BASE_960H_VOCAB


def save_random_base_model(output: Path) -> Path:
    # Wav2Vec2Config() defaults are wav2vec2-base's architecture (group-norm feature encoder, 12 layers of 768)
    return save_random_model(output, Wav2Vec2Config(vocab_size=len(BASE_960H_VOCAB)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    save_random_base_model(args.output)
    print(f"saved a random base-size model to {args.output}")


if __name__ == "__main__":
    main()

"""Randomly initialised Wav2Vec2ForCTC models saved like facebook/wav2vec2-base-960h's files: base size, for
timing without the real weights, and a tiny one of the same architecture choices, for tests and demos.

`python3 -m benchmarks.random_base_model --output DIR`. Their transcripts are noise: use them for speed only.
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from wav2vec2_pipeline.model import BASE_960H_VOCAB, BLANK_TOKEN, WORD_DELIMITER


def tiny_config() -> Wav2Vec2Config:
    """base-960h's architecture choices (group-norm feature encoder, post-LN) at a few small layers."""
    return Wav2Vec2Config(
        vocab_size=len(BASE_960H_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        pad_token_id=0,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
    )


def save_random_model(model_dir: Path, config: Wav2Vec2Config, seed: int = 0) -> Path:
    """config.json, model.safetensors, preprocessor_config.json, vocab.json and tokenizer files."""
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).save_pretrained(model_dir)
    Wav2Vec2FeatureExtractor().save_pretrained(model_dir)
    vocab_file = model_dir / "vocab.json"
    vocab_file.write_text(json.dumps({token: i for i, token in enumerate(BASE_960H_VOCAB)}))
    Wav2Vec2CTCTokenizer(str(vocab_file), pad_token=BLANK_TOKEN, word_delimiter_token=WORD_DELIMITER).save_pretrained(
        model_dir
    )
    return model_dir


def save_tiny_model(model_dir: Path, seed: int = 0) -> Path:
    return save_random_model(model_dir, tiny_config(), seed)


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

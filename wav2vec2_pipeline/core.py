"""The pipeline in memory: plan -> rows of audio -> backend -> stitch -> decode.

The file stages run the same pieces with files between them (preprocess writes the rows `make_batch` builds,
compile.py runs them with `run_batch`, postprocess stitches and decodes); a benchmark or a driver that holds the
audio itself calls `transcribe`, and scores with `scoring`. It imports no stage.
"""

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from wav2vec2_pipeline.audio import normalize
from wav2vec2_pipeline.binrows import make_batch, run_batch
from wav2vec2_pipeline.decoding import DecodingOptions, make_decoder
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import BASE_960H_VOCAB
from wav2vec2_pipeline.planning import Layout, plan_bins, stitch

GREEDY = DecodingOptions()

if TYPE_CHECKING:
    from transformers import Wav2Vec2FeatureExtractor

    from wav2vec2_pipeline.backends import Backend


def transcribe(
    audio: Mapping[str, np.ndarray],
    backend: "Backend",
    *,
    batch_size: int,
    layout: Layout,
    feature_extractor: "Wav2Vec2FeatureExtractor",
    vocab: Sequence[str] = BASE_960H_VOCAB,
    decoding: DecodingOptions = GREEDY,
) -> dict[str, str]:
    """Text of every utterance (16 kHz float32 audio by id) on a loaded backend, laid out as preprocess would
    lay it out and decoded as `decoding` says (greedy by default); an utterance that `layout` skips has no
    entry, one too short for a frame an empty text."""
    if batch_size < 1:
        raise PipelineError(f"batch_size must be at least 1, got {batch_size}")
    decode = make_decoder(decoding, vocab)
    plan = plan_bins({utt_id: len(samples) for utt_id, samples in audio.items()}, batch_size, layout)

    @functools.lru_cache(maxsize=2)  # an utterance's windows are consecutive rows
    def normalized(utt_id: str) -> np.ndarray:
        return normalize(audio[utt_id], feature_extractor)

    def rows() -> Iterator[tuple[str, tuple[int, int], np.ndarray]]:
        for bin_ in plan.bins:
            logits = run_batch(backend, make_batch(bin_, normalized), len(bin_.rows))
            for index, row in enumerate(bin_.rows):
                yield row.utt_id, row.keep, logits[index]

    texts = {utt_id: " ".join(span.word for span in decode(logits)) for utt_id, logits in stitch(rows())}
    return texts | dict.fromkeys(plan.empty, "")

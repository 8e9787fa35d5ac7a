"""One bin's rows in memory: built from normalised audio as a plan lays them out, and run through a backend."""

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from wav2vec2_pipeline.audio import fit_length
from wav2vec2_pipeline.planning import Bin

if TYPE_CHECKING:
    from wav2vec2_pipeline.backends import Backend


def make_batch(bin_: Bin, normalized_audio: Callable[[str], np.ndarray]) -> np.ndarray:
    """One bin's rows, each a window of its utterance's normalised audio, zero-padded; pad rows stay zero."""
    rows = np.zeros((bin_.height, bin_.samples), dtype=np.float32)
    for index, row in enumerate(bin_.rows):
        rows[index] = fit_length(normalized_audio(row.utt_id)[row.start :], bin_.samples)
    return rows


def run_batch(backend: "Backend", batch: np.ndarray, rows_used: int | None) -> np.ndarray:
    """Logits of every row. A backend that takes any shape runs only the rows holding speech; the logits
    of the zero pad rows, which no stage reads, are written as zeros, so the output bin keeps its shape."""
    if backend.static_shapes or rows_used is None or rows_used == batch.shape[0]:
        return backend.to_host(backend.forward(backend.to_device(batch)))
    logits = backend.to_host(backend.forward(backend.to_device(batch[:rows_used])))
    return np.concatenate([logits, np.zeros((batch.shape[0] - rows_used, *logits.shape[1:]), logits.dtype)])

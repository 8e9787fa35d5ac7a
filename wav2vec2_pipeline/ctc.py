"""Greedy CTC decoding: best token per frame, collapse repeats, drop blanks, `|` -> space."""

from collections.abc import Sequence

import numpy as np

from wav2vec2_pipeline.model import BLANK_TOKEN, WORD_DELIMITER


def collapse(token_ids: np.ndarray, blank_id: int) -> list[int]:
    """Merge runs of one id, then drop blanks; a blank between two equal ids keeps both (the LL in HELLO)."""
    if token_ids.size == 0:
        return []
    run_starts = np.concatenate(([True], token_ids[1:] != token_ids[:-1]))
    merged = token_ids[run_starts]
    return merged[merged != blank_id].tolist()


def ids_to_text(token_ids: Sequence[int], vocab: Sequence[str]) -> str:
    """Join tokens; word delimiters become single spaces, with none at either end."""
    text = "".join(vocab[i] for i in token_ids).replace(WORD_DELIMITER, " ")
    return " ".join(text.split())


def greedy_decode(logits: np.ndarray, vocab: Sequence[str]) -> str:
    """Text of one utterance's logits, shape (frames, vocab size)."""
    if logits.ndim != 2 or logits.shape[1] != len(vocab):
        raise ValueError(f"logits of shape {logits.shape} do not match a vocabulary of {len(vocab)} tokens")
    return ids_to_text(collapse(logits.argmax(axis=1), vocab.index(BLANK_TOKEN)), vocab)

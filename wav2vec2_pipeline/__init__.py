"""Batch wav2vec2 CTC inference in four file-connected stages (preprocess, export, run, score)."""

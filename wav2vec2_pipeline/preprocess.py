"""Stage 1: a LibriSpeech split -> static-shape float32 bins, the batch map and the ground truth."""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm
from transformers import Wav2Vec2FeatureExtractor

from wav2vec2_pipeline.audio import audio_num_samples, fit_length, normalize, read_audio
from wav2vec2_pipeline.batches import BatchMap, map_path, plan_batches, write_ground_truth, write_map
from wav2vec2_pipeline.bins import bin_name, list_bins, remove_manifest, write_bin, write_manifest
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.librispeech import Utterance, find_utterances


@dataclass(frozen=True)
class PreprocessResult:
    batch_map: BatchMap
    map_file: Path
    ground_truth_file: Path


def make_batch(
    utterances: list[Utterance], batch_size: int, max_samples: int, feature_extractor: Wav2Vec2FeatureExtractor
) -> np.ndarray:
    """One bin's rows: each utterance normalised on its own, then zero-padded; missing rows stay zero."""
    rows = np.zeros((batch_size, max_samples), dtype=np.float32)
    for row, utterance in enumerate(utterances):
        rows[row] = fit_length(normalize(read_audio(utterance.audio_path), feature_extractor), max_samples)
    return rows


def preprocess(
    input_dir: Path,
    batch_size: int,
    output_dir: Path,
    data_path: Path,
    max_samples: int,
    feature_extractor: Wav2Vec2FeatureExtractor,
) -> PreprocessResult:
    """Write all bins or none: they are built in a hidden staging dir and moved in at the end."""
    if max_samples < 1:
        raise PipelineError(f"--max_samples must be positive, got {max_samples}")
    utterances = find_utterances(input_dir)
    num_samples = {
        u.utt_id: audio_num_samples(u.audio_path) for u in tqdm(utterances, desc="checking audio", disable=None)
    }
    kept = [u for u in utterances if num_samples[u.utt_id] <= max_samples]
    skipped = [u.utt_id for u in utterances if num_samples[u.utt_id] > max_samples]
    groups = plan_batches([u.utt_id for u in kept], batch_size)
    by_id = {u.utt_id: u for u in kept}

    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".preprocess-staging-", dir=output_dir))
    try:
        for index, group in enumerate(tqdm(groups, desc=f"writing bs{batch_size} bins", disable=None)):
            batch = make_batch([by_id[utt_id] for utt_id in group], batch_size, max_samples, feature_extractor)
            write_bin(staging / bin_name(index), batch)
        # From here the old run's bins are replaced: its map and manifest go first, the new ones come last.
        remove_manifest(output_dir)
        map_path(data_path, batch_size).unlink(missing_ok=True)
        for stale in list_bins(output_dir):
            stale.unlink()
        for index in range(len(groups)):
            (staging / bin_name(index)).replace(output_dir / bin_name(index))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    bins = {bin_name(index): group for index, group in enumerate(groups)}
    write_manifest(output_dir, (batch_size, max_samples), list(bins), batch_size=batch_size, rows_used=len(kept))
    ground_truth_file = write_ground_truth(data_path, {u.utt_id: u.transcript for u in utterances})
    batch_map = BatchMap(batch_size, max_samples, bins, num_samples, skipped)
    return PreprocessResult(batch_map, write_map(data_path, batch_map), ground_truth_file)

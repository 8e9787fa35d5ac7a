"""Stage 1: a LibriSpeech split -> static-shape float32 bins, the batch map and the ground truth."""

import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor

from wav2vec2_pipeline.audio import audio_num_samples, fit_length, normalize, read_audio
from wav2vec2_pipeline.batches import BatchMap, batch_map_from_plan, map_path, read_map, write_ground_truth, write_map
from wav2vec2_pipeline.bins import is_whole, list_bins, read_manifest, remove_manifest, write_bin, write_manifest
from wav2vec2_pipeline.fileio import make_dir
from wav2vec2_pipeline.librispeech import AUDIO_SUFFIX, TRANSCRIPT_SUFFIX, find_utterances
from wav2vec2_pipeline.model import num_frames
from wav2vec2_pipeline.planning import Bin, plan_bins, plan_cost
from wav2vec2_pipeline.provenance import digest, stamp

STAGING_PREFIX = ".preprocess-staging-"


@dataclass(frozen=True)
class Layout:
    """How utterances become rows: the window length(s), what happens past the longest, chunk context."""

    windows: tuple[int, ...]
    long_audio: str
    stride_frames: int | None = None
    """Context frames dropped on each side of a chunk window; None: a sixth of the window, as HF does."""

    def stride_for(self, config: Wav2Vec2Config) -> int:
        if self.stride_frames is not None:
            return self.stride_frames
        return num_frames(max(self.windows), config) // 6


@dataclass(frozen=True)
class PreprocessResult:
    batch_map: BatchMap
    map_file: Path
    ground_truth_file: Path


def make_batch(bin_: Bin, batch_size: int, normalized_audio: Callable[[str], np.ndarray]) -> np.ndarray:
    """One bin's rows, each a window of its utterance's normalised audio, zero-padded; missing rows stay zero."""
    rows = np.zeros((batch_size, bin_.samples), dtype=np.float32)
    for index, row in enumerate(bin_.rows):
        rows[index] = fit_length(normalized_audio(row.utt_id)[row.start :], bin_.samples)
    return rows


def preprocess_id(
    input_dir: Path,
    batch_size: int,
    layout: Layout,
    feature_extractor: Wav2Vec2FeatureExtractor,
    config: Wav2Vec2Config,
) -> str:
    """Changes with any input file (added, removed, replaced) and any setting that shapes the bins."""
    files = [p for p in input_dir.rglob("*") if p.name.endswith((AUDIO_SUFFIX, TRANSCRIPT_SUFFIX))]
    return digest(
        {
            "files": stamp(files),
            "batch_size": batch_size,
            "windows": layout.windows,
            "long_audio": layout.long_audio,
            "stride_frames": layout.stride_for(config),
            "feature_extractor": feature_extractor.to_dict(),
            "conv": [config.conv_kernel, config.conv_stride],
        }
    )


def up_to_date(output_dir: Path, data_path: Path, batch_size: int, run_id: str) -> bool:
    """Whether the previous run came from the same inputs and settings and left its map and every bin whole."""
    manifest = read_manifest(output_dir)
    if manifest is None or manifest.get("preprocess_id") != run_id or not map_path(data_path, batch_size).is_file():
        return False
    batch_map = read_map(data_path, batch_size)
    return batch_map.preprocess_id == run_id and all(
        is_whole(output_dir / name, (batch_size, samples)) for name, samples in batch_map.bin_samples.items()
    )


def preprocess(
    input_dir: Path,
    batch_size: int,
    output_dir: Path,
    data_path: Path,
    layout: Layout,
    feature_extractor: Wav2Vec2FeatureExtractor,
    config: Wav2Vec2Config,
    overwrite: bool = False,
) -> PreprocessResult | None:
    """Write all bins or none: they are built in a hidden staging dir and moved in at the end. Returns
    None, writing nothing, where the outputs are already complete for the same inputs and settings."""
    utterances = find_utterances(input_dir)
    run_id = preprocess_id(input_dir, batch_size, layout, feature_extractor, config)
    if not overwrite and up_to_date(output_dir, data_path, batch_size, run_id):
        return None
    by_id = {u.utt_id: u for u in utterances}
    lengths = {u.utt_id: audio_num_samples(u.audio_path) for u in tqdm(utterances, desc="checking audio", disable=None)}
    plan = plan_bins(lengths, batch_size, layout.windows, layout.long_audio, layout.stride_for(config), config)

    @functools.lru_cache(maxsize=2)  # an utterance's windows are consecutive rows
    def normalized_audio(utt_id: str) -> np.ndarray:
        """The whole utterance normalised once, so every window of it shares one scale."""
        return normalize(read_audio(by_id[utt_id].audio_path), feature_extractor)

    batch_map = batch_map_from_plan(plan, batch_size, max(layout.windows), layout.long_audio, lengths, run_id)
    make_dir(output_dir)
    for stale in output_dir.glob(f"{STAGING_PREFIX}*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir))
    try:
        for name, bin_ in tqdm(list(zip(batch_map.bins, plan.bins, strict=True)), desc="writing bins", disable=None):
            write_bin(staging / name, make_batch(bin_, batch_size, normalized_audio))
        # From here the old run's bins are replaced: its map and manifest go first, the new ones come last.
        remove_manifest(output_dir)
        map_path(data_path, batch_size).unlink(missing_ok=True)
        for stale in list_bins(output_dir):
            stale.unlink()
        for name in batch_map.bins:
            (staging / name).replace(output_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    cost = plan_cost(plan, lengths, batch_size)
    write_manifest(
        output_dir,
        {name: [batch_size, samples] for name, samples in batch_map.bin_samples.items()},
        batch_size=batch_size,
        rows_used={name: len(ids) for name, ids in batch_map.bins.items()},
        speech_samples=cost.speech_samples - cost.lost_samples,
        preprocess_id=run_id,
    )
    ground_truth_file = write_ground_truth(data_path, {u.utt_id: u.transcript for u in utterances})
    return PreprocessResult(batch_map, write_map(data_path, batch_map), ground_truth_file)

"""A run's audio, planned: its utterances known by content, their lengths, the bins they make with the key of
each, the loader that normalises them, and the batch map and ground truth that describe them. Preprocess writes
the bins it plans; the Ray driver's fused mode makes them in memory from the same plan."""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wav2vec2_pipeline.audio import Conversion, audio_num_samples, normalize, read_audio
from wav2vec2_pipeline.batchmap import (
    CHUNKED,
    CUT_OFF,
    EMPTY,
    SKIPPED,
    WHOLE,
    BatchMap,
    MapBin,
    UtteranceEntry,
    ground_truth_text,
    read_ground_truth,
    read_map,
    write_ground_truth,
    write_map,
)
from wav2vec2_pipeline.binfile import bin_name
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.librispeech import Utterance
from wav2vec2_pipeline.model import SAMPLE_RATE, preprocessor_settings
from wav2vec2_pipeline.planning import Bin, Layout, Plan, plan_bins
from wav2vec2_pipeline.provenance import DigestCache, bytes_sha256, digest
from wav2vec2_pipeline.resources import check_fits
from wav2vec2_pipeline.rundir import RunDir
from wav2vec2_pipeline.sources import find_inputs


@dataclass(frozen=True, kw_only=True)
class PreprocessOptions:
    """Everything that shapes the bins, checked when built (against the model, through `layout`)."""

    batch_size: int
    layout: Layout
    model_dir: Path | None = None
    """Feature-extractor settings from here; None: base-960h's (the transformers defaults)."""
    conversion: Conversion = field(default_factory=Conversion)
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise PipelineError(f"--batch_size must be at least 1, got {self.batch_size}")
        layout, window = self.layout, max(self.layout.windows)
        largest = min(self.batch_size * window, layout.bin_samples or self.batch_size * window)
        check_fits(max(2 * 4 * largest, layout.geometry.least_bytes(1, largest)),
                   f"a bin of up to {largest} samples (rows x row length), run through the model,",
                   "Use a smaller --max_samples." if largest == window else
                   "Use a smaller --bin_samples." if layout.bin_samples else "Use a smaller --batch_size.")  # fmt: skip


def outcomes(plan: Plan) -> dict[str, str]:
    named = {SKIPPED: plan.skipped, CUT_OFF: plan.cut, CHUNKED: plan.chunked, EMPTY: plan.empty}
    return {utt_id: outcome for outcome, ids in named.items() for utt_id in ids}


def check_paths(source: Path, output_dir: Path, data_path: Path, output_flag: str = "--output") -> None:
    for flag, path in ((output_flag, output_dir), ("--data_path", data_path)):
        if path.exists() and not path.is_dir():
            raise PipelineError(f"{flag} {path} is a file; pass a dir (it is created if missing)")
    if output_dir.resolve() == source.resolve():
        raise PipelineError(f"{output_flag} {output_dir} is the input dir; write the bins to a dir of their own")


def up_to_date(
    run_dir: RunDir,
    data_path: Path,
    batch_size: int,
    run_key: str,
    truth_sha: str,
    audio: dict[str, str],
    manifest_key: str | None = None,
) -> bool:
    """Whether a finished run from the same inputs and settings left its manifest (of run `manifest_key`,
    by default `run_key`), its map (with the audio where it is now), the same ground truth, and every bin
    holding what its record says."""
    manifest = run_dir.manifest()
    if manifest is None or manifest.run_key != (manifest_key or run_key):
        return False
    try:
        batch_map = read_map(data_path, batch_size)
        read_ground_truth(data_path, batch_map)
    except PipelineError:
        return False
    return (
        batch_map.run_key == run_key
        and batch_map.ground_truth_sha256 == truth_sha
        and manifest.map_digest == batch_map.layout_digest
        and {u: e.audio for u, e in batch_map.utterances.items()} == audio
        and all(run_dir.holds(b) for b in manifest.bins)
    )


@dataclass(frozen=True)
class Inputs:
    """Every utterance of `--input`, known by content, and the key of the run that lays them out: what is read
    before deciding whether there is anything to do (an unchanged audio file costs one stat)."""

    utterances: list[Utterance]
    audio_sha: dict[str, str]
    transcripts: dict[str, str]
    truth_sha: str
    shaping: dict[str, object]
    """Every setting that shapes the bins."""
    run_key: str
    audio_paths: dict[str, str]
    """Where each utterance's audio is now (absolute), as the map records it."""


def identify_inputs(source: Path, options: PreprocessOptions, cache: DigestCache) -> Inputs:
    settings = preprocessor_settings(options.model_dir)
    utterances = find_inputs(source)
    audio_sha = {u.utt_id: cache.sha256(u.audio_path)
                 for u in tqdm(utterances, desc="hashing audio", disable=None)}  # fmt: skip
    transcripts = {u.utt_id: u.transcript for u in utterances if u.transcript is not None}
    shaping = {  # the layout whole (its repr names every field), so a field added to it keys the run too
        "batch_size": options.batch_size, "layout": options.layout, "feature_extractor": settings,
        "conversion": options.conversion,
    }  # fmt: skip
    return Inputs(
        utterances=utterances, audio_sha=audio_sha, transcripts=transcripts,
        truth_sha=bytes_sha256(ground_truth_text(transcripts)), shaping=shaping,
        run_key=digest({"audio": audio_sha, **shaping}),  # transcripts shape no bin: editing one redoes no logits
        audio_paths={u.utt_id: str(u.audio_path.absolute()) for u in utterances},
    )  # fmt: skip


@dataclass(frozen=True)
class BinPlan:
    """The bins of a run, planned from the audio headers: each with the key of what goes into it."""

    lengths: dict[str, int]
    plan: Plan
    keys: dict[str, str]
    """Bin name -> digest of the settings, rows and audio that make it, in plan order."""


def plan_inputs(source: Path, inputs: Inputs, options: PreprocessOptions) -> BinPlan:
    lengths = {u.utt_id: audio_num_samples(u.audio_path, options.conversion)
               for u in tqdm(inputs.utterances, desc="checking audio", disable=None)}  # fmt: skip
    plan = plan_bins(lengths, options.batch_size, options.layout)
    if not plan.bins:
        skipped = (f" and {len(plan.skipped)} longer than the window with --long_audio skip. Use --long_audio chunk "
                   "for long audio") if plan.skipped else ""  # fmt: skip
        raise PipelineError(
            f"no utterance of {source} gives a row: {len(plan.empty)} are too short for one frame "
            f"({options.layout.geometry.receptive_field} samples){skipped}"
        )
    keys = {
        bin_name(index): digest({**inputs.shaping, "samples": b.samples, "rows": [(r.utt_id, r.start) for r in b.rows],
                                 "audio": [inputs.audio_sha[r.utt_id] for r in b.rows]})
        for index, b in enumerate(plan.bins)
    }  # fmt: skip
    return BinPlan(lengths, plan, keys)


def bin_speech(bin_: Bin, layout: Layout) -> int:
    """Samples of speech the bin's rows give the transcripts: their kept frames."""
    return sum(row.keep[1] - row.keep[0] for row in bin_.rows) * layout.geometry.samples_per_frame


def write_map_and_truth(
    data_path: Path, inputs: Inputs, bins: BinPlan, map_bins: list[MapBin], options: PreprocessOptions
) -> tuple[BatchMap, Path, Path]:
    """The ground truth, then the batch map that names it by its sha256: the map is the last of the two."""
    layout = options.layout
    ground_truth_file, written_sha = write_ground_truth(data_path, inputs.transcripts)
    treated = outcomes(bins.plan)
    batch_map = BatchMap(
        run_key=inputs.run_key, batch_size=options.batch_size, max_samples=max(layout.windows),
        long_audio=layout.long_audio, sample_rate=SAMPLE_RATE, ground_truth_sha256=written_sha, bins=map_bins,
        utterances={u: UtteranceEntry(bins.lengths[u], treated.get(u, WHOLE), inputs.audio_paths[u],
                                      u in inputs.transcripts) for u in sorted(bins.lengths)},
    )  # fmt: skip
    return batch_map, write_map(data_path, batch_map), ground_truth_file


def audio_loader(
    by_id: dict[str, Utterance], lengths: dict[str, int], model_dir: Path | None, conversion: Conversion
) -> Callable[[str], np.ndarray]:
    """utt_id -> the whole utterance normalised once by the model's feature extractor, so every window of it
    shares one scale; the decoded length must be the one the plan was made with."""
    from wav2vec2_pipeline.model import load_feature_extractor

    feature_extractor = load_feature_extractor(model_dir)  # loaded (and checked) before anything is written

    @functools.lru_cache(maxsize=2)  # an utterance's windows are consecutive rows
    def normalized_audio(utt_id: str) -> np.ndarray:
        path = by_id[utt_id].audio_path
        audio = read_audio(path, expected_samples=lengths[utt_id], conversion=conversion)
        with np.errstate(all="ignore"):
            normalized = normalize(audio, feature_extractor)
        if not (np.isfinite(audio).all() and np.isfinite(normalized).all()):
            raise PipelineError(f"{path} holds samples that are not finite numbers (NaN, inf, or too large to "
                                "normalise): re-export it as PCM audio")  # fmt: skip
        return normalized

    return normalized_audio

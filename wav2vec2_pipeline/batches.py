"""The batch map (which utterance sits in which row of which bin) and the ground-truth file.

Both live in `--data_path` and are the contract between preprocess and postprocess.
"""

from dataclasses import dataclass
from pathlib import Path

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_json, atomic_write_text, read_json
from wav2vec2_pipeline.librispeech import parse_transcripts
from wav2vec2_pipeline.model import SAMPLE_RATE

MAP_FORMAT = "wav2vec2-pipeline/batch-map/1"
GROUND_TRUTH_FILE = "ground_truth_texts.txt"


@dataclass(frozen=True)
class BatchMap:
    batch_size: int
    max_samples: int
    bins: dict[str, list[str]]
    """Bin file name -> utterance ids of its rows, in row order; pad rows are not listed."""
    num_samples: dict[str, int]
    """Every utterance's original length in samples, skipped ones included."""
    skipped: list[str]
    """Utterances longer than max_samples, in no bin."""

    @property
    def scored(self) -> list[str]:
        return [utt_id for ids in self.bins.values() for utt_id in ids]

    def seconds(self, utt_ids: list[str]) -> float:
        return sum(self.num_samples[utt_id] for utt_id in utt_ids) / SAMPLE_RATE


def plan_batches(utt_ids: list[str], batch_size: int) -> list[list[str]]:
    """Consecutive groups of `batch_size`; the last may be shorter (its bin is padded with zero rows)."""
    if batch_size < 1:
        raise PipelineError(f"--batch_size must be at least 1, got {batch_size}")
    return [utt_ids[start : start + batch_size] for start in range(0, len(utt_ids), batch_size)]


def map_path(data_path: Path, batch_size: int) -> Path:
    return data_path / f"batch_i_filename_map_bs{batch_size}.json"


def write_map(data_path: Path, batch_map: BatchMap) -> Path:
    path = map_path(data_path, batch_map.batch_size)
    atomic_write_json(
        path,
        {
            "format": MAP_FORMAT,
            "batch_size": batch_map.batch_size,
            "max_samples": batch_map.max_samples,
            "sample_rate": SAMPLE_RATE,
            "bins": batch_map.bins,
            "num_samples": batch_map.num_samples,
            "skipped": batch_map.skipped,
        },
    )
    return path


def read_map(data_path: Path, batch_size: int) -> BatchMap:
    """Load and check the map preprocess wrote for `batch_size`."""
    path = map_path(data_path, batch_size)
    if not path.is_file():
        found = sorted(p.name for p in data_path.glob("batch_i_filename_map_bs*.json"))
        hint = f" Maps present: {', '.join(found)}; pass the --batch_size used in preprocess." if found else ""
        raise PipelineError(f"{path} not found: run wav2vec2_preprocess.py with --batch_size {batch_size} first.{hint}")
    raw = read_json(path, "batch map", "wav2vec2_preprocess.py")
    if not isinstance(raw, dict) or raw.get("format") != MAP_FORMAT:
        raise PipelineError(f"{path} is not a batch map of format {MAP_FORMAT}; re-run wav2vec2_preprocess.py")
    try:
        batch_map = BatchMap(
            batch_size=int(raw["batch_size"]),
            max_samples=int(raw["max_samples"]),
            bins={name: list(ids) for name, ids in raw["bins"].items()},
            num_samples={utt_id: int(n) for utt_id, n in raw["num_samples"].items()},
            skipped=list(raw["skipped"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise PipelineError(f"{path} lacks or mangles field {error}; re-run wav2vec2_preprocess.py") from error
    listed = batch_map.scored + batch_map.skipped
    problems = []
    if batch_map.batch_size != batch_size:
        problems.append(f"it says batch_size {batch_map.batch_size}")
    if any(len(ids) > batch_size for ids in batch_map.bins.values()):
        problems.append(f"a bin lists more than {batch_size} utterances")
    if len(set(listed)) != len(listed):
        problems.append("an utterance is listed twice")
    if set(listed) != set(batch_map.num_samples):
        problems.append("its utterances and their lengths do not match")
    if problems:
        raise PipelineError(f"{path} is inconsistent ({'; '.join(problems)}); re-run wav2vec2_preprocess.py")
    return batch_map


def write_ground_truth(data_path: Path, transcripts: dict[str, str]) -> Path:
    path = data_path / GROUND_TRUTH_FILE
    atomic_write_text(path, "".join(f"{utt_id} {text}\n" for utt_id, text in sorted(transcripts.items())))
    return path


def read_ground_truth(data_path: Path, utt_ids: list[str]) -> dict[str, str]:
    """Transcripts of `utt_ids`; every one must be there."""
    path = data_path / GROUND_TRUTH_FILE
    if not path.is_file():
        raise PipelineError(f"{path} not found: run wav2vec2_preprocess.py first")
    transcripts = parse_transcripts(path)
    missing = [utt_id for utt_id in utt_ids if utt_id not in transcripts]
    if missing:
        raise PipelineError(
            f"{path} has no transcript for {len(missing)} utterance(s) of the map, e.g. {missing[0]}; "
            "was it overwritten by a preprocess run on another dataset? Re-run wav2vec2_preprocess.py"
        )
    return {utt_id: transcripts[utt_id] for utt_id in utt_ids}

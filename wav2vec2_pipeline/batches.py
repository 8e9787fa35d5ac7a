"""The batch map (which utterance sits in which row of which bin) and the ground-truth file.

Both live in `--data_path` and are the contract between preprocess and postprocess.
"""

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from wav2vec2_pipeline.bins import bin_name
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_json, atomic_write_text, read_json
from wav2vec2_pipeline.librispeech import parse_transcripts
from wav2vec2_pipeline.model import SAMPLE_RATE
from wav2vec2_pipeline.planning import Plan

MAP_FORMAT = "wav2vec2-pipeline/batch-map/2"
GROUND_TRUTH_FILE = "ground_truth_texts.txt"


@dataclass(frozen=True)
class BatchMap:
    batch_size: int
    max_samples: int
    """The window (the longest bucket with --bucket); longer utterances are handled by `long_audio`."""
    long_audio: str
    bins: dict[str, list[str]]
    """Bin file name -> utterance id of each of its rows, in row order; pad rows are not listed.
    With --long_audio chunk an id has one row per window, in window order."""
    bin_samples: dict[str, int]
    """Bin file name -> row length: the bin is batch_size x bin_samples float32."""
    keep_frames: dict[str, list[list[int]]]
    """Bin file name -> per row, the frames [a, b) of its logits that belong to the utterance."""
    num_samples: dict[str, int]
    """Every utterance's original length in samples, skipped ones included."""
    skipped: list[str]
    cut: list[str]
    chunked: list[str]
    preprocess_id: str
    """Hash of the inputs and settings that produced the bins; carried into both bin manifests."""

    @property
    def scored(self) -> list[str]:
        """Utterances with logits, each once, in the order of their first row."""
        return list(dict.fromkeys(utt_id for ids in self.bins.values() for utt_id in ids))

    def seconds(self, utt_ids: list[str]) -> float:
        return sum(self.num_samples[utt_id] for utt_id in utt_ids) / SAMPLE_RATE

    def seconds_lost(self, utt_id: str) -> float:
        """Speech of the utterance that no row holds."""
        if utt_id in self.skipped:
            return self.num_samples[utt_id] / SAMPLE_RATE
        if utt_id in self.cut:
            return (self.num_samples[utt_id] - self.max_samples) / SAMPLE_RATE
        return 0.0


def batch_map_from_plan(
    plan: Plan, batch_size: int, max_samples: int, long_audio: str, num_samples: dict[str, int], preprocess_id: str
) -> BatchMap:
    names = [bin_name(index) for index in range(len(plan.bins))]
    named = list(zip(names, plan.bins, strict=True))
    return BatchMap(
        batch_size=batch_size,
        max_samples=max_samples,
        long_audio=long_audio,
        bins={name: [row.utt_id for row in b.rows] for name, b in named},
        bin_samples={name: b.samples for name, b in named},
        keep_frames={name: [list(row.keep) for row in b.rows] for name, b in named},
        num_samples=num_samples,
        skipped=plan.skipped,
        cut=plan.cut,
        chunked=plan.chunked,
        preprocess_id=preprocess_id,
    )


def map_path(data_path: Path, batch_size: int) -> Path:
    return data_path / f"batch_i_filename_map_bs{batch_size}.json"


def write_map(data_path: Path, batch_map: BatchMap) -> Path:
    path = map_path(data_path, batch_map.batch_size)
    atomic_write_json(
        path,
        {
            "format": MAP_FORMAT,
            "sample_rate": SAMPLE_RATE,
            **asdict(batch_map),
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
        batch_map = BatchMap(**{field.name: raw[field.name] for field in fields(BatchMap)})
    except KeyError as error:
        raise PipelineError(f"{path} lacks or mangles field {error}; re-run wav2vec2_preprocess.py") from error
    listed = batch_map.scored + batch_map.skipped
    problems = []
    if batch_map.batch_size != batch_size:
        problems.append(f"it says batch_size {batch_map.batch_size}")
    if any(len(ids) > batch_size for ids in batch_map.bins.values()):
        problems.append(f"a bin lists more than {batch_size} rows")
    if len(set(listed)) != len(listed):
        problems.append("an utterance is both skipped and in a bin")
    if set(listed) != set(batch_map.num_samples):
        problems.append("its utterances and their lengths do not match")
    if any(len(batch_map.keep_frames.get(name, ())) != len(ids) for name, ids in batch_map.bins.items()):
        problems.append("keep_frames does not give one frame range per row")
    if set(batch_map.bin_samples) != set(batch_map.bins):
        problems.append("bin_samples does not give every bin's row length")
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

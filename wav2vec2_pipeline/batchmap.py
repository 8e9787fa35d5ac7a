"""The batch map (which utterance sits in which row of which bin) and the ground-truth file.

Both live in `--data_path` and are the contract between preprocess and postprocess. The map also carries the
sha256 of every input bin and of the ground truth, so postprocess can tie logits to the audio they came from.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from wav2vec2_pipeline import records
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_bytes
from wav2vec2_pipeline.librispeech import parse_transcripts
from wav2vec2_pipeline.model import SAMPLE_RATE
from wav2vec2_pipeline.planning import Row
from wav2vec2_pipeline.provenance import bytes_sha256, digest, file_sha256

GROUND_TRUTH_FILE = "ground_truth_texts.txt"
WHOLE, SKIPPED, CUT_OFF, CHUNKED, EMPTY = "whole", "skipped", "cut", "chunked", "empty"
OUTCOMES = (WHOLE, SKIPPED, CUT_OFF, CHUNKED, EMPTY)
"""What preprocess did with an utterance: in one row, left out (longer than the window, --long_audio skip),
its start only, split into windows, or no row at all (too short for one frame: transcribed as empty)."""


@dataclass(frozen=True)
class MapBin:
    name: str
    samples: int
    """Row length: the input bin is height x samples float32."""
    sha256: str
    """Of the input bin's bytes: logits computed from any other bin are refused."""
    rows: list[Row]
    """In row order; pad rows are not listed. A chunked utterance has one row per window, in window order."""
    height: int
    """Rows the bin holds: batch_size for static shapes (pad rows after `rows`), else len(rows)."""


@dataclass(frozen=True)
class UtteranceEntry:
    num_samples: int
    outcome: str
    audio: str
    """The audio file it was read from."""
    reference: bool
    """Whether the input gave a transcript (in the ground truth): only those are scored."""


@dataclass(frozen=True)
class BatchMap:
    FORMAT: ClassVar[str] = "wav2vec2-pipeline/batch-map/4"
    PRODUCED_BY: ClassVar[str] = "wav2vec2_preprocess.py"

    run_key: str
    """The preprocess run that wrote the input bins; their manifest and the logits' manifest carry it too."""
    batch_size: int
    max_samples: int
    """The longest row (the window; the longest bucket with --layout bucket); longer utterances are handled by
    `long_audio`."""
    long_audio: str
    sample_rate: int
    ground_truth_sha256: str
    bins: list[MapBin]
    utterances: dict[str, UtteranceEntry]
    """Every utterance of the input, with its original length and outcome."""

    def with_outcome(self, *outcomes: str) -> list[str]:
        return sorted(u for u, entry in self.utterances.items() if entry.outcome in outcomes)

    @property
    def with_rows(self) -> list[str]:
        return self.with_outcome(WHOLE, CUT_OFF, CHUNKED)

    @property
    def long_ids(self) -> list[str]:
        return sorted(u for u, entry in self.utterances.items() if entry.num_samples > self.max_samples)

    def seconds(self, utt_ids: list[str]) -> float:
        return sum(self.utterances[u].num_samples for u in utt_ids) / self.sample_rate

    def seconds_lost(self, utt_id: str) -> float:
        """Speech of the utterance that no row holds."""
        entry = self.utterances[utt_id]
        if entry.outcome in (SKIPPED, EMPTY):
            return entry.num_samples / self.sample_rate
        if entry.outcome == CUT_OFF:
            return (entry.num_samples - self.max_samples) / self.sample_rate
        return 0.0

    @property
    def layout_digest(self) -> str:
        """Digest of what places audio in rows (bins, rows, kept frames, lengths, outcomes), not of the
        transcripts or where the audio lives: the input and logits manifests carry it, so an edited map is
        refused, while a corrected transcript or a moved dataset needs no new logits."""
        layout = {u: (e.num_samples, e.outcome) for u, e in self.utterances.items()}
        return digest({"bins": self.bins, "utterances": layout, "max_samples": self.max_samples,
                       "batch_size": self.batch_size, "long_audio": self.long_audio})  # fmt: skip

    def check(self, path: Path) -> None:
        """The map's own consistency: every row's utterance is listed with an outcome that has rows, and
        every utterance with such an outcome has rows; rows fit the batch size and keep frames in order."""
        problems = []
        if self.batch_size < 1 or self.sample_rate != SAMPLE_RATE:
            problems.append(f"batch_size {self.batch_size}, sample_rate {self.sample_rate}")
        names = [b.name for b in self.bins]
        if len(set(names)) != len(names):
            problems.append("a bin is listed twice")
        if any(not len(b.rows) <= b.height <= self.batch_size for b in self.bins):
            problems.append(f"a bin lists more rows than it holds, or holds more than {self.batch_size}")
        in_rows = {row.utt_id for b in self.bins for row in b.rows}
        if in_rows != set(self.with_rows):
            problems.append("the utterances in rows differ from those whose outcome has rows")
        if any(e.outcome not in OUTCOMES for e in self.utterances.values()):
            problems.append(f"an outcome is not one of {', '.join(OUTCOMES)}")
        if any(not 0 <= row.keep[0] < row.keep[1] for b in self.bins for row in b.rows):
            problems.append("a row keeps no frames")
        if problems:
            raise PipelineError(f"{path} is inconsistent ({'; '.join(problems)}); re-run wav2vec2_preprocess.py")


def map_path(data_path: Path, batch_size: int) -> Path:
    return data_path / f"batch_i_filename_map_bs{batch_size}.json"


def write_map(data_path: Path, batch_map: BatchMap) -> Path:
    path = map_path(data_path, batch_map.batch_size)
    records.save(path, batch_map)
    return path


def read_map(data_path: Path, batch_size: int) -> BatchMap:
    """Load and check the map preprocess wrote for `batch_size`."""
    path = map_path(data_path, batch_size)
    if not data_path.is_dir():
        kind = "is a file" if data_path.exists() else "does not exist"
        raise PipelineError(f"--data_path {data_path} {kind}; pass the dir wav2vec2_preprocess.py wrote its map to")
    if not path.is_file():
        found = sorted(p.name for p in data_path.glob("batch_i_filename_map_bs*.json"))
        hint = f" Maps present: {', '.join(found)}; pass the --batch_size used in preprocess." if found else ""
        raise PipelineError(f"{path} not found: run wav2vec2_preprocess.py with --batch_size {batch_size} first.{hint}")
    batch_map = records.load(BatchMap, path)
    if batch_map.batch_size != batch_size:
        raise PipelineError(f"{path} says batch_size {batch_map.batch_size}; re-run wav2vec2_preprocess.py")
    batch_map.check(path)
    return batch_map


def ground_truth_text(transcripts: dict[str, str]) -> bytes:
    return "".join(f"{utt_id} {text}\n" for utt_id, text in sorted(transcripts.items())).encode("utf-8")


def write_ground_truth(data_path: Path, transcripts: dict[str, str]) -> tuple[Path, str]:
    """The file and the sha256 of what was written (not re-read: another run may rewrite it meanwhile)."""
    path = data_path / GROUND_TRUTH_FILE
    data = ground_truth_text(transcripts)
    atomic_write_bytes(path, data)
    return path, bytes_sha256(data)


def read_ground_truth(data_path: Path, batch_map: BatchMap) -> dict[str, str]:
    """The transcript of every utterance of the map that has one, from the very file the map was written with."""
    path = data_path / GROUND_TRUTH_FILE
    if not path.is_file():
        raise PipelineError(f"{path} not found: run wav2vec2_preprocess.py first")
    if file_sha256(path) != batch_map.ground_truth_sha256:
        raise PipelineError(
            f"{path} is not the ground truth the batch map for batch size {batch_map.batch_size} was written "
            "with (a preprocess run on other data into the same --data_path, or an edit); re-run "
            "wav2vec2_preprocess.py, or give each dataset its own --data_path"
        )
    transcripts = parse_transcripts(path)
    with_text = [u for u, entry in batch_map.utterances.items() if entry.reference]
    missing = [u for u in with_text if u not in transcripts]
    if missing:
        raise PipelineError(f"{path} has no transcript for {len(missing)} utterance(s) of the map, e.g. {missing[0]}")
    return {utt_id: transcripts[utt_id] for utt_id in with_text}

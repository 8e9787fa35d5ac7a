"""The records a dir of bins carries, each a typed, versioned JSON file (records.py): a completion record per
bin, the record of a run in progress, a shard's record, and the manifest a finished run writes last."""

import statistics
from dataclasses import dataclass
from typing import ClassVar

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.provenance import digest


@dataclass(frozen=True)
class BinRecord:
    """One finished bin: what produced it (`key`) and what it holds (`sha256` of its bytes)."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/bin-record/1"
    PRODUCED_BY: ClassVar[str] = "the stage that wrote the bin"

    name: str
    shape: list[int]
    sha256: str
    key: str
    """Digest of everything that went into this bin (its audio or input bin, model, settings)."""
    rows_used: int
    """Rows holding speech; the rest are zero padding."""
    speech_samples: int
    """Speech the bin contributes to the transcripts: its rows' kept frames x samples per frame."""
    input_sha256: str | None = None
    """Logits only: the sha256 of the input bin they were computed from."""


@dataclass(frozen=True)
class RunStart:
    """Written when a run starts, so that an unfinished dir can say which run and how to finish it."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/run-start/1"
    PRODUCED_BY: ClassVar[str] = "the stage that writes the dir"

    run_key: str
    bins: dict[str, str]
    """Every bin of the run, with the key its completion record must carry."""
    command: str
    sharded: bool = False
    """Started by a --shard worker: what finishes the run is the missing shards, then --merge."""
    shards: int | None = None
    """The N of the run's --shard workers (written by them and by their merge; None: one process, or a record of
    an earlier version): every worker of the run must split it the same way."""


@dataclass(frozen=True)
class InputManifest:
    """A finished preprocess run's input bins."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/input-bins/3"
    PRODUCED_BY: ClassVar[str] = "wav2vec2_preprocess.py"

    run_key: str
    batch_size: int
    bins: list[BinRecord]
    map_digest: str | None
    """The batch map's layout (batches.BatchMap.layout_digest); None for bins from elsewhere."""


@dataclass(frozen=True)
class StageMetrics:
    """The stage's own figures: all bins of the run, bin reads and writes included."""

    bins_run: int
    rows_run: int
    """Rows the model ran in this invocation (pad rows skipped where the backend allows)."""
    wall_s: float
    speech_s: float
    """Speech the rows run carry (kept frames x 20 ms)."""
    peak_rss_mib: float

    @property
    def samples_per_s(self) -> float | None:
        return self.rows_run / self.wall_s if self.rows_run else None

    @property
    def audio_s_per_s(self) -> float | None:
        """None for bins from elsewhere, whose speech is not known."""
        return self.speech_s / self.wall_s if self.rows_run and self.speech_s else None


@dataclass(frozen=True)
class Throughput:
    """The reference's figure: one batch resident on the device, warm-up, timed runs each synchronised."""

    shape: list[int]
    warmup_runs: int
    run_s: list[float]
    threads: int | None = None
    """--threads of the run that measured it (None: the library's default)."""

    @property
    def samples_per_s(self) -> float:
        return len(self.run_s) * self.shape[0] / sum(self.run_s)

    @property
    def median_run_ms(self) -> float:
        return 1000 * statistics.median(self.run_s)


@dataclass(frozen=True)
class LogitsManifest:
    """A finished compile.py run's logits bins, tied to the model and input bins that produced them."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/logits-bins/3"
    PRODUCED_BY: ClassVar[str] = "compile.py"

    run_key: str
    batch_size: int
    input_run_key: str
    """The input manifest's run key: which preprocess run the input bins came from."""
    model_sha256: str
    backend: str
    backend_options: list[str] | None
    """What else, beyond the backend's name, shapes the logits (torch_aie's SoC and precision)."""
    map_digest: str | None
    """Copied from the input manifest: ties the logits to the batch map's rows."""
    vocab: list[str] | None
    """The model's vocabulary, where traced.pth's export record gives it."""
    bins: list[BinRecord]
    stage: StageMetrics
    throughput: Throughput | None = None


@dataclass(frozen=True)
class ShardRecord:
    """Written by a shard worker when it has finished all its bins: what --merge checks before the manifest."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/shard/1"
    PRODUCED_BY: ClassVar[str] = "a --shard run"

    run_key: str
    index: int
    count: int
    bins: list[str]
    stage: StageMetrics | None
    """compile.py's figures for this shard's bins."""


def logits_run_key(model_sha256: str, inputs_run_key: str, backend: str, options: list[str] | None) -> str:
    """What a whole logits run is computed from: the model, the preprocess run of its inputs, the backend."""
    return digest({"model": model_sha256, "inputs": inputs_run_key, "backend": backend, "options": options})


def logits_key(model_sha256: str, input_sha256: str, shape: list[int], backend: str, options: list[str] | None) -> str:
    """What a logits bin is computed from: the model, the input bin and the shape it is read as (the same bytes
    are other rows at another shape), and the backend with its options."""
    return digest({"model": model_sha256, "input": input_sha256, "shape": list(shape), "backend": backend,
                   "options": options})  # fmt: skip


def changed_input_bin(where: str, when: str = "since preprocess wrote it") -> PipelineError:
    """The error for an input bin whose bytes are not the ones its manifest lists (and keys name)."""
    return PipelineError(
        f"{where} is not the bin its manifest lists (its content changed {when}); re-run wav2vec2_preprocess.py "
        "with --overwrite"
    )

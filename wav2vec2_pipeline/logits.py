"""Logits bins, whoever runs the model: the model they depend on, their keys, and how each is checked, written
and recorded as it comes back from a runner (a backend in this process, or a cluster's actors)."""

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wav2vec2_pipeline.binfile import as_array, read_bytes, shape_text
from wav2vec2_pipeline.binrows import run_batch
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.manifests import (
    BinRecord,
    LogitsManifest,
    StageMetrics,
    changed_input_bin,
    logits_key,
    logits_run_key,
)
from wav2vec2_pipeline.model import Geometry
from wav2vec2_pipeline.provenance import bytes_sha256
from wav2vec2_pipeline.rundir import RunDir
from wav2vec2_pipeline.runloop import Tally

if TYPE_CHECKING:
    from wav2vec2_pipeline.backends import Backend
    from wav2vec2_pipeline.export import ExportRecord


@dataclass(frozen=True)
class TracedModel:
    """traced.pth as the logits depend on it: its content, and its export record where that still describes it."""

    sha256: str
    export: "ExportRecord | None"

    @property
    def geometry(self) -> Geometry:
        return self.export.geometry if self.export is not None else Geometry()

    @property
    def vocab_size(self) -> int:
        return len(self.export.vocab) if self.export is not None and self.export.vocab else self.geometry.vocab_size

    @property
    def vocab(self) -> list[str] | None:
        return self.export.vocab if self.export is not None else None


def traced_model(torchscript_path: Path) -> TracedModel:
    from wav2vec2_pipeline.export import model_sha256, read_record

    model_sha = model_sha256(torchscript_path)
    export = read_record(torchscript_path)
    if export is not None and export.sha256 != model_sha:
        export = None  # traced.pth was replaced since: its record says nothing about it
    return TracedModel(model_sha, export)


BinResult = tuple[BinRecord, np.ndarray, str]
"""An input bin's record, its logits, and the sha256 of the input bytes they were computed from."""
BinRunner = Callable[[list[BinRecord]], Iterable[BinResult]]
"""Runs input bins somewhere and gives back their logits, in any order."""


def largest_first(bins: list[BinRecord]) -> list[BinRecord]:
    """The order to run bins in: by rows x samples, largest first. Whole utterances sorted by length make each bin
    longer than the last, and a runtime fed them in that order grows its buffers bin by bin (OpenVINO: a fifth of
    each bin's time); largest first, it sizes them once, and a pool of workers ends on its smallest tasks."""
    return sorted(bins, key=lambda b: b.shape[0] * b.shape[1], reverse=True)


@dataclass(frozen=True)
class LocalRunner:
    """The bins one after another on a loaded backend in this process, each read as it is run, largest first
    (`largest_first`); first the backend is prepared for their shapes (a static-shape backend compiles each,
    minutes on an NPU), and for `also_prepare` (the throughput figure's), only those, outside the stage's figures
    (`tally`)."""

    backend: "Backend"
    input_dir: Path
    tally: Tally | None = None
    also_prepare: tuple[tuple[int, ...], ...] = ()

    def __call__(self, bins: list[BinRecord]) -> Iterator[BinResult]:
        started = time.perf_counter()
        for shape in dict.fromkeys([*(tuple(b.shape) for b in bins), *self.also_prepare]):
            self.backend.prepare(shape)
        if self.tally is not None:
            self.tally.started += time.perf_counter() - started
        for source in largest_first(bins):
            data = read_bytes(self.input_dir / source.name, source.shape, "Re-run preprocess.")
            yield source, run_batch(self.backend, as_array(data, source.shape), source.rows_used), bytes_sha256(data)


@dataclass(frozen=True)
class LogitsPlan:
    """What a logits run computes, before anything runs: the model, the backend with its options, and the
    preprocess run whose input bins it reads."""

    model: TracedModel
    backend: str
    backend_options: list[str] | None
    static_shapes: bool
    """The backend runs every row of a bin, pad rows included."""
    inputs_run_key: str
    batch_size: int
    map_digest: str | None

    @property
    def run_key(self) -> str:
        return logits_run_key(self.model.sha256, self.inputs_run_key, self.backend, self.backend_options)

    @property
    def settings(self) -> str:
        return " ".join([f"--backend {self.backend}", *(self.backend_options or [])])

    def key(self, source: BinRecord, input_sha256: str) -> str:
        """The key of the logits of `source` when its bytes have `input_sha256` ("" where they are not known)."""
        if not input_sha256:
            return ""
        return logits_key(self.model.sha256, input_sha256, source.shape, self.backend, self.backend_options)

    def manifest(self, bins: list[BinRecord], stage: StageMetrics, map_digest: str | None = None) -> LogitsManifest:
        return LogitsManifest(
            run_key=self.run_key, batch_size=self.batch_size, input_run_key=self.inputs_run_key,
            model_sha256=self.model.sha256, backend=self.backend, backend_options=self.backend_options,
            map_digest=map_digest or self.map_digest, vocab=self.model.vocab, bins=bins, stage=stage,
        )  # fmt: skip

    def check(self, source: BinRecord, logits: np.ndarray) -> None:
        """Logits are numbers of the shape the model and the input bin call for, or nothing is written."""
        if not np.isfinite(logits).all():
            raise PipelineError(
                f"the model returned non-finite logits for {source.name} (NaN or inf): its input bin holds "
                "audio out of range, or the model's weights are broken; check the audio and re-run preprocess"
            )
        expected = (source.shape[0], self.model.geometry.num_frames(source.shape[1]), self.model.vocab_size)
        if logits.shape != expected:
            raise PipelineError(
                f"the model returned logits of shape {shape_text(logits.shape)} for {source.name}; expected "
                f"{shape_text(expected)} (frames from the model's conv strides, tokens from its vocabulary)"
            )


def logits_maker(
    run_dir: RunDir,
    plan: LogitsPlan,
    sources: dict[str, BinRecord],
    runner: BinRunner,
    tally: Tally,
    made_input: Callable[[BinRecord], None] | None = None,
) -> Callable[[list[str]], Iterator[BinRecord]]:
    """runloop.complete's `make` for logits: the runner runs the named input bins, and each result is checked
    against the input bin it names, then written with its record. `made_input` records an input bin made in
    memory (its sha256 now known) before the logits that depend on it."""

    def make(names: list[str]) -> Iterator[BinRecord]:
        for source, logits, input_sha in runner([sources[name] for name in names]):
            if source.sha256 and input_sha != source.sha256:
                raise changed_input_bin(f"input bin {source.name}", "while this run read the bins")
            made = dataclasses.replace(source, sha256=input_sha)
            if made_input is not None:
                made_input(made)
            plan.check(made, logits)
            tally.rows += made.shape[0] if plan.static_shapes else made.rows_used
            tally.speech_samples += made.speech_samples
            yield run_dir.put(made.name, logits, key=plan.key(made, input_sha), rows_used=made.rows_used,
                              speech_samples=made.speech_samples, input_sha256=input_sha)  # fmt: skip

    return make

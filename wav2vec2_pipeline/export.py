"""Stage 2 and the conversions every backend builds on: Wav2Vec2ForCTC -> a TorchScript module mapping float32
[B, T] to logits [B, frames, vocab] (checked against the eager model), and that module -> ONNX (fp32, int8).

The export record beside traced.pth ties it to the model files it came from (by content) and carries the
model's vocabulary and geometry, so later stages decode with the vocabulary the logits were made with.
"""

import contextlib
import importlib.metadata
import io
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from wav2vec2_pipeline import records
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_bytes, check_output_file, make_dir
from wav2vec2_pipeline.model import (
    BASE_960H_VOCAB,
    VOCAB_FILE,
    Geometry,
    is_hub_id,
    load_ctc_model,
    load_geometry,
    load_vocab,
)
from wav2vec2_pipeline.provenance import DigestCache, digest, file_sha256, locked
from wav2vec2_pipeline.resources import check_fits

if TYPE_CHECKING:
    from transformers import Wav2Vec2ForCTC

TRACE_ATOL = 1e-3
TRACE_RTOL = 1e-4
ONNX_OPSET = 17
FEATURE_ENCODER = ".*/feature_extractor/.*"
"""The convolutional feature encoder's nodes in the ONNX export, which NNCF's static int8 leaves alone: quantised
with a scale per tensor, the trained model's CER rose from 14.2% to 19.8% on the espeak test set. Its
convolutions after the first get int8 of another kind (frame_matmuls)."""


class LogitsOnly(torch.nn.Module):
    """Return the logits tensor alone: backends and torch_aie take a plain tensor out, not a ModelOutput."""

    def __init__(self, model: "Wav2Vec2ForCTC") -> None:
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.model(input_values).logits


@dataclass(frozen=True)
class TraceCheck:
    max_abs_diff: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


@dataclass(frozen=True)
class ExportRecord:
    """traced.pth.json: what traced.pth was made from and what it holds."""

    FORMAT: ClassVar[str] = "wav2vec2-pipeline/export/2"
    PRODUCED_BY: ClassVar[str] = "wav2vec2_pth2ts.py"

    run_key: str
    """Digest of the model files' contents and --max_samples."""
    model: str
    max_samples: int
    sha256: str
    size: int
    mtime_ns: int
    """traced.pth's size and modification time when its sha256 was taken: a later stage reuses the digest
    while they are unchanged."""
    vocab: list[str] | None
    geometry: Geometry
    max_abs_diff: float


def trace(model: "Wav2Vec2ForCTC", num_samples: int) -> torch.jit.ScriptModule:
    """Trace at batch 1 with `num_samples`; the batch axis stays free, so every backend can pick N."""
    example = torch.randn(1, num_samples)
    with torch.no_grad(), warnings.catch_warnings():
        # SDPA's `is_causal = q_length > 1 and ...` is frozen as False: right for every input of 2+ frames.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(LogitsOnly(model).eval(), example, check_trace=False)


def check_trace(model: "Wav2Vec2ForCTC", traced: torch.jit.ScriptModule, num_samples: int, seed: int = 1) -> TraceCheck:
    """Compare traced and eager logits on a fresh random input of another batch size than the trace's."""
    generator = torch.Generator().manual_seed(seed)
    fresh = torch.randn(2, num_samples, generator=generator)
    with torch.no_grad():
        eager = model(fresh).logits
        scripted = traced(fresh)
    if eager.shape != scripted.shape:
        raise PipelineError(f"traced module returned {tuple(scripted.shape)}; eager model {tuple(eager.shape)}")
    diff = float((eager - scripted).abs().max())
    if not torch.allclose(eager, scripted, atol=TRACE_ATOL, rtol=TRACE_RTOL):
        raise PipelineError(f"traced module differs from the eager model: max abs logit difference {diff:.3g}")
    return TraceCheck(diff, tuple(fresh.shape), tuple(eager.shape))


def save_torchscript(module: torch.jit.ScriptModule, path: Path) -> None:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def record_path(torchscript_path: Path) -> Path:
    return torchscript_path.with_name(torchscript_path.name + ".json")


def read_record(torchscript_path: Path) -> ExportRecord | None:
    """The export record, where wav2vec2_pth2ts.py wrote one (traced.pth from elsewhere has none)."""
    path = record_path(torchscript_path)
    return records.load(ExportRecord, path) if path.is_file() else None


def model_sha256(torchscript_path: Path) -> str:
    """traced.pth's sha256; taken from its export record while its size and modification time are unchanged."""
    if not torchscript_path.is_file():
        kind = "is a dir" if torchscript_path.is_dir() else "not found"
        raise PipelineError(f"{torchscript_path} {kind}: pass the file wav2vec2_pth2ts.py wrote")
    record = read_record(torchscript_path)
    stat = torchscript_path.stat()
    if record is not None and (record.size, record.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return record.sha256
    return file_sha256(torchscript_path)


@dataclass(frozen=True)
class ExportResult:
    record: ExportRecord
    check: TraceCheck | None
    """None where the export was up to date and nothing was traced."""


def export(model_dir: str, output: Path, *, max_samples: int, overwrite: bool = False) -> ExportResult:
    """Trace, check and save the model, then its record; reuse a saved export of the same model contents."""
    check_output_file(output, "--output", lambda path: record_path(path).is_file())
    source = Path(model_dir)
    local = not is_hub_id(model_dir)
    geometry = load_geometry(source) if local else None
    if geometry is not None and max_samples < geometry.receptive_field:
        raise PipelineError(
            f"--max_samples {max_samples} is shorter than the model's receptive field ({geometry.receptive_field} "
            "samples): trace with at least that"
        )
    needed = (geometry or Geometry()).least_bytes(2, max_samples)
    check_fits(needed, f"tracing and checking at --max_samples {max_samples}", "Trace with a shorter --max_samples.")
    vocab = list(load_vocab(source, geometry)) if local and (source / VOCAB_FILE).is_file() else None
    if local and vocab is None and (geometry.vocab_size, geometry.pad_token_id) == (len(BASE_960H_VOCAB), 0):
        vocab = list(load_vocab(source, geometry))  # no vocab.json, base-960h's shape: its vocabulary
    cache = DigestCache(output.with_name(f".{output.name}.digests.json"))
    ours = {output.resolve(), record_path(output).resolve()}
    files = [p for p in sorted(source.iterdir()) if local and p.is_file() and not p.name.startswith(".")
             and not is_conversion(p, output) and p.resolve() not in ours]  # fmt: skip
    contents = {p.name: cache.sha256(p) for p in files} if local else model_dir
    run_key = digest({"model": contents, "max_samples": max_samples})
    previous = None if overwrite or not output.is_file() else _matching_record(output, run_key)
    if previous is not None:
        return ExportResult(previous, None)
    make_dir(output.parent)
    with locked(output.with_name(f".{output.name}.lock"), str(output)):
        model = load_ctc_model(model_dir)
        traced = trace(model, max_samples)
        check = check_trace(model, traced, max_samples)
        save_torchscript(traced, output)
        stat = output.stat()
        record = ExportRecord(
            run_key=run_key, model=model_dir, max_samples=max_samples, sha256=file_sha256(output),
            size=stat.st_size, mtime_ns=stat.st_mtime_ns,
            vocab=vocab, geometry=geometry or _geometry_of(model),
            max_abs_diff=check.max_abs_diff,
        )  # fmt: skip
        records.save(record_path(output), record)
        cache.save()
    return ExportResult(record, check)


def _matching_record(output: Path, run_key: str) -> ExportRecord | None:
    try:
        record = read_record(output)
    except PipelineError:
        return None
    if record is None or record.run_key != run_key or model_sha256(output) != record.sha256:
        return None
    return record


def _geometry_of(model: "Wav2Vec2ForCTC") -> Geometry:
    config = model.config
    return Geometry(tuple(config.conv_kernel), tuple(config.conv_stride), config.conv_dim[0], config.vocab_size,
                    config.pad_token_id)  # fmt: skip


def load_torchscript(path: Path, device: str) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise PipelineError(f"{path} not found: create it with wav2vec2_pth2ts.py")
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as error:
        raise PipelineError(
            f"{path} is not a TorchScript module ({error}); re-create it with wav2vec2_pth2ts.py"
        ) from error


def torchscript_sibling(torchscript_path: Path, suffix: str) -> Path:
    """Where a conversion of traced.pth is kept for the next run: beside it, named by what it was made from."""
    return torchscript_path.with_name(f"{torchscript_path.stem}.{suffix}")


def is_conversion(path: Path, torchscript_path: Path) -> bool:
    """Whether `path` is one of the conversions of `torchscript_path` kept beside it (not a model file)."""
    stem = re.escape(torchscript_path.stem)
    return re.fullmatch(rf"{stem}\.([0-9a-f]{{16}}\..+|aie-[0-9a-f]{{16}}\.ts)", path.name) is not None


@contextlib.contextmanager
def made_once(path: Path) -> Iterator[Path | None]:
    """Make `path` once, whatever the number of workers: under its lock, a scratch dir beside it where it is
    still missing (scratch of a killed earlier attempt removed first), None where another worker made it."""
    with locked(path.with_name(f".{path.name}.lock"), str(path), wait=True):
        if path.is_file():
            yield None
            return
        for stale in path.parent.glob(f".{path.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.tmp-") as tmp:
            yield Path(tmp)


def onnx_model(torchscript_path: Path, sha256: str) -> Path:
    """traced.pth exported to ONNX with free batch and length axes, once: kept beside it, named by its hash."""
    path = torchscript_sibling(torchscript_path, f"{sha256[:16]}.onnx")
    with made_once(path) as tmp:
        if tmp is not None:
            _export_onnx(torchscript_path, path, tmp)
    return path


def _export_onnx(torchscript_path: Path, path: Path, tmp: Path) -> None:
    print(f"exporting {torchscript_path} to ONNX, once: {path}", flush=True)
    module = load_torchscript(torchscript_path, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.zeros(1, 16_000),), f"{tmp}/model.onnx", input_names=["input_values"],
            output_names=["logits"], opset_version=ONNX_OPSET, dynamo=False,
            dynamic_axes={"input_values": {0: "batch", 1: "samples"}, "logits": {0: "batch", 1: "frames"}},
        )  # fmt: skip
        os.replace(f"{tmp}/model.onnx", path)


def int8_recipe() -> str:
    """What besides the model and the speech decides NNCF's int8 model: library versions and our settings."""
    try:
        versions = {name: importlib.metadata.version(name) for name in ("nncf", "openvino")}
    except importlib.metadata.PackageNotFoundError as error:
        raise PipelineError(f"int8 with OpenVINO needs {error.name}: pip install -r requirements.txt") from error
    from wav2vec2_pipeline import frame_matmuls  # imports openvino

    feature_encoder = {"rewrite": "frame_matmuls/1", "max_group_channels": frame_matmuls.MAX_GROUP_CHANNELS}
    return digest({**versions, "ignored": FEATURE_ENCODER, "model_type": "transformer", **feature_encoder})


def openvino_int8_model(onnx_path: Path, calibration_key: str, rows: Callable[[], Iterable[np.ndarray]], *,
                        int8_feature_encoder: bool) -> Path:
    """The ONNX model quantised to int8, once: NNCF's post-training quantisation (weights and activations, scales
    from `rows` of speech), the feature encoder left in float; with `int8_feature_encoder`, its convolutions after
    the first as int8-weight matrix products that OpenVINO quantises frame by frame as they run (frame_matmuls).
    Saved as OpenVINO IR beside it, named by the hashes of model, speech and recipe."""
    recipe = [calibration_key, int8_recipe(), int8_feature_encoder]
    path = onnx_path.with_name(f"{onnx_path.stem}.int8-{digest(recipe)[:16]}.xml")
    with made_once(path) as tmp:
        if tmp is not None:
            import nncf
            import openvino

            from wav2vec2_pipeline import frame_matmuls

            items = list(rows())
            print(f"quantising {onnx_path} to int8 with NNCF on {len(items)} rows of speech, once: {path}", flush=True)
            nncf.set_log_level(logging.WARNING)
            quantized = nncf.quantize(
                openvino.Core().read_model(onnx_path), nncf.Dataset(items), subset_size=len(items),
                model_type=nncf.ModelType.TRANSFORMER, ignored_scope=nncf.IgnoredScope(patterns=[FEATURE_ENCODER]),
            )  # fmt: skip
            if int8_feature_encoder and frame_matmuls.rewrite(quantized):  # its MatMuls: the float ones left
                convolutions = nncf.IgnoredScope(types=["Convolution", "GroupConvolution"])
                quantized = nncf.compress_weights(quantized, mode=nncf.CompressWeightsMode.INT8_SYM,
                                                  ignored_scope=convolutions)  # fmt: skip
            openvino.save_model(quantized, f"{tmp}/model.xml", compress_to_fp16=False)
            os.replace(f"{tmp}/model.bin", path.with_suffix(".bin"))
            os.replace(f"{tmp}/model.xml", path)  # last: the .xml is there only once both are whole
    return path


def onnx_int8_model(fp32_path: Path) -> Path:
    """The ONNX model with its matrix products dynamically quantised to int8 (convolutions stay fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = fp32_path.with_suffix(".int8.onnx")
    with made_once(path) as tmp:
        if tmp is not None:
            print(f"quantising {fp32_path} to int8, once: {path}", flush=True)
            quantize_dynamic(fp32_path, f"{tmp}/model.onnx", op_types_to_quantize=["MatMul"],
                             weight_type=QuantType.QInt8)  # fmt: skip
            os.replace(f"{tmp}/model.onnx", path)
    return path

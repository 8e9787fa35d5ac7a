"""Stage 2: Wav2Vec2ForCTC -> a TorchScript module mapping float32 [B, T] to logits [B, frames, vocab]."""

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Wav2Vec2ForCTC

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_bytes

TRACE_ATOL = 1e-3
TRACE_RTOL = 1e-4


class LogitsOnly(torch.nn.Module):
    """Return the logits tensor alone: backends and torch_aie take a plain tensor out, not a ModelOutput."""

    def __init__(self, model: Wav2Vec2ForCTC) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.model(input_values).logits


@dataclass(frozen=True)
class TraceCheck:
    max_abs_diff: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def trace(model: Wav2Vec2ForCTC, num_samples: int) -> torch.jit.ScriptModule:
    """Trace at batch 1 with `num_samples`; the batch axis stays free, so every backend can pick N."""
    example = torch.randn(1, num_samples)
    with torch.no_grad(), warnings.catch_warnings():
        # SDPA's `is_causal = q_length > 1 and ...` is frozen as False: right for every input of 2+ frames.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(LogitsOnly(model).eval(), example, check_trace=False)


def check_trace(model: Wav2Vec2ForCTC, traced: torch.jit.ScriptModule, num_samples: int, seed: int = 1) -> TraceCheck:
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

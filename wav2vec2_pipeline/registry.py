"""Where a name given on the command line finds its implementation: one table per kind of extension (backends,
CTC decoders, transcript writers), each entry a `module:attribute` imported only when it is used, so that the
command lines list and check names without importing torch. Adding one is its own module plus one line here."""

import importlib
from dataclasses import dataclass
from typing import Any

from wav2vec2_pipeline.errors import PipelineError

AUTO = "auto"
"""--backend auto: the fastest backend this machine runs (backends.resolve)."""


@dataclass(frozen=True)
class Registry:
    kind: str
    flag: str
    entries: dict[str, str]
    """Name -> `module:attribute`, in the order they are listed (for backends, the order `auto` tries them)."""
    chooser: str | None = None
    """A name that picks one of the entries where it is resolved (--backend auto)."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    @property
    def choices(self) -> tuple[str, ...]:
        return (self.chooser, *self.entries) if self.chooser else self.names

    def check(self, name: str) -> str:
        if name not in self.choices:
            raise PipelineError(f"{self.flag} {name!r}: unknown {self.kind}; choose one of {', '.join(self.choices)}")
        return name

    def load(self, name: str) -> Any:
        module, _, attribute = self.entries[self.check(name)].partition(":")
        return getattr(importlib.import_module(module), attribute)


BACKENDS = Registry("backend", "--backend", {
    "aie": "wav2vec2_pipeline.backends:AieBackend",
    "cuda": "wav2vec2_pipeline.backends:CudaBackend",
    "onnxruntime": "wav2vec2_pipeline.backends:OnnxRuntimeBackend",
    "torchscript": "wav2vec2_pipeline.backends:TorchScriptBackend",
    "torchscript-frozen": "wav2vec2_pipeline.backends:FrozenTorchScriptBackend",
    "onnxruntime-int8": "wav2vec2_pipeline.backends:OnnxRuntimeInt8Backend",
    "openvino": "wav2vec2_pipeline.backends:OpenVinoBackend",
    "openvino-bf16": "wav2vec2_pipeline.backends:OpenVinoBf16Backend",
    "openvino-int8": "wav2vec2_pipeline.backends:OpenVinoInt8Backend",
    "cuda-fp16": "wav2vec2_pipeline.backends:CudaFp16Backend",
}, chooser=AUTO)  # fmt: skip
DECODERS = Registry("decoder", "--decoder", {
    "greedy": "wav2vec2_pipeline.ctc:GreedyDecoder",
    "beam": "wav2vec2_pipeline.beam:BeamDecoder",
})  # fmt: skip
WRITERS = Registry("transcript writer", "output", {
    "transcripts": "wav2vec2_pipeline.outputs:JSONL",
    "srt": "wav2vec2_pipeline.outputs:SRT",
    "ctm": "wav2vec2_pipeline.outputs:CTM",
})  # fmt: skip
SOURCES = Registry("input source", "--input", {
    "manifest": "wav2vec2_pipeline.sources:JsonlManifest",
    "librispeech": "wav2vec2_pipeline.sources:LibriSpeechSplit",
    "folder": "wav2vec2_pipeline.sources:AudioFolder",
})  # fmt: skip

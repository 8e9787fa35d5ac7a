"""facebook/wav2vec2-base-960h: its constants, its files, and reading them from a local dir or the hub.

config.json and vocab.json are read as JSON here, without transformers, so that a stage can check its
arguments against the model (receptive field, frames per window, vocabulary) before the slow imports.
"""

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wav2vec2_pipeline.errors import PipelineError

if TYPE_CHECKING:
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

MODEL_ID = "facebook/wav2vec2-base-960h"
SAMPLE_RATE = 16_000
MAX_SAMPLES = 100_000
"""The reference deployment's static input length: 6.25 s at 16 kHz."""

BASE_960H_VOCAB = (
    "<pad>", "<s>", "</s>", "<unk>", "|",
    "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L", "U", "M", "W", "C", "F", "G", "Y",
    "P", "B", "V", "K", "'", "X", "J", "Q", "Z",
)  # fmt: skip
"""Token id -> token of base-960h's vocab.json; `<pad>` (id 0) is the CTC blank, `|` the word break."""

BLANK_TOKEN = "<pad>"
WORD_DELIMITER = "|"

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PREPROCESSOR_FILE = "preprocessor_config.json"
VOCAB_FILE = "vocab.json"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

HOW_TO_GET_MODEL = (
    f"Download the files of {MODEL_ID} into the directory, e.g. "
    f"`hf download {MODEL_ID} --local-dir ./wav2vec2_pytorch_model` "
    "(see README, 'Model files')"
)


@dataclass(frozen=True)
class Geometry:
    """The facts of a model that shape the files between stages: how samples become frames, and how many
    tokens a frame scores. Defaults are wav2vec2-base's (base-960h's)."""

    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    first_conv_channels: int = 512
    vocab_size: int = len(BASE_960H_VOCAB)
    pad_token_id: int = 0

    def num_frames(self, num_samples: int) -> int:
        """Logit frames the convolutional feature encoder makes of `num_samples` (312 for 100000); 0 for
        fewer samples than the receptive field."""
        length = num_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride, strict=True):
            length = (length - kernel) // stride + 1
            if length < 1:
                return 0
        return length

    @property
    def receptive_field(self) -> int:
        """Samples one frame sees (400 for base): a row shorter than this gives no frame at all."""
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride, strict=True):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    @property
    def samples_per_frame(self) -> int:
        return math.prod(self.conv_stride)

    def least_bytes(self, rows: int, samples: int) -> int:
        """A lower bound on the memory a forward pass of `rows` x `samples` needs: the input and the first
        convolution's output, float32 (the real peak is higher), so a refusal is never a false alarm."""
        return rows * samples * (4 + 4 * self.first_conv_channels // self.conv_stride[0])


def num_frames(num_samples: int, geometry: Geometry | None = None) -> int:
    return (geometry or Geometry()).num_frames(num_samples)


def is_hub_id(name: str) -> bool:
    """True for an `owner/name` string that is not a local path, so it can only mean the hub."""
    return not Path(name).exists() and bool(_HUB_ID.match(name))


def check_model_dir(model_dir: Path, needed: tuple[str, ...]) -> None:
    """Fail with the list of missing files unless `model_dir` holds all of `needed` and weights."""
    if not model_dir.is_dir():
        kind = "is a file, not a directory" if model_dir.exists() else "does not exist"
        raise PipelineError(f"model dir {model_dir} {kind}. {HOW_TO_GET_MODEL}.")
    missing = [name for name in needed if not (model_dir / name).is_file()]
    if not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise PipelineError(f"model dir {model_dir} is incomplete: missing {', '.join(missing)}. {HOW_TO_GET_MODEL}.")


def model_file(model_dir: Path, name: str) -> Path:
    if not model_dir.is_dir():
        kind = "is a file, not a directory" if model_dir.exists() else "does not exist"
        raise PipelineError(f"model dir {model_dir} {kind}. {HOW_TO_GET_MODEL}.")
    path = model_dir / name
    if not path.is_file():
        raise PipelineError(f"{path} not found. {HOW_TO_GET_MODEL}.")
    return path


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PipelineError(f"{path} cannot be read as JSON ({error}). {HOW_TO_GET_MODEL}.") from error
    if not isinstance(obj, dict):
        raise PipelineError(f"{path} holds no JSON object. {HOW_TO_GET_MODEL}.")
    return obj


def _int_list(config: dict[str, Any], key: str, default: tuple[int, ...], path: Path) -> tuple[int, ...]:
    value = config.get(key, list(default))
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and v >= 1 for v in value):
        raise PipelineError(f"{path}: {key} must be a list of positive integers, got {value!r}. {HOW_TO_GET_MODEL}.")
    return tuple(value)


def load_geometry(model_dir: Path | None) -> Geometry:
    """The dir's config.json, checked; without a dir, base-960h's."""
    if model_dir is None:
        return Geometry()
    path = model_file(model_dir, CONFIG_FILE)
    config = _read_json_object(path)
    default = Geometry()
    kernel = _int_list(config, "conv_kernel", default.conv_kernel, path)
    stride = _int_list(config, "conv_stride", default.conv_stride, path)
    dims = _int_list(config, "conv_dim", (default.first_conv_channels,) * len(kernel), path)
    if not len(kernel) == len(stride) == len(dims):
        raise PipelineError(f"{path}: conv_kernel, conv_stride and conv_dim differ in length. {HOW_TO_GET_MODEL}.")
    vocab_size, pad_id = config.get("vocab_size", default.vocab_size), config.get("pad_token_id", default.pad_token_id)
    if not isinstance(vocab_size, int) or vocab_size < 2 or not isinstance(pad_id, int):
        raise PipelineError(f"{path}: vocab_size {vocab_size!r} / pad_token_id {pad_id!r} are not token counts/ids")
    return Geometry(kernel, stride, dims[0], vocab_size, pad_id)


def load_vocab(model_dir: Path | None, geometry: Geometry | None = None) -> tuple[str, ...]:
    """Token id -> token from the dir's vocab.json, checked against the config (the logits' width and the
    blank's id must agree, or every transcript is silently wrong); without a dir, base-960h's vocabulary, and
    so for a dir without vocab.json whose config has base-960h's 32 tokens and blank id."""
    if model_dir is None:
        return BASE_960H_VOCAB
    if not (model_dir / VOCAB_FILE).is_file():
        geometry = geometry or load_geometry(model_dir)
        if (geometry.vocab_size, geometry.pad_token_id) == (len(BASE_960H_VOCAB), 0):
            return BASE_960H_VOCAB
    path = model_file(model_dir, VOCAB_FILE)
    token_to_id = _read_json_object(path)
    if not all(isinstance(i, int) for i in token_to_id.values()) or sorted(token_to_id.values()) != list(
        range(len(token_to_id))
    ):
        raise PipelineError(f"{path}: token ids are not 0..{len(token_to_id) - 1}; is it a CTC vocab.json?")
    vocab = tuple(sorted(token_to_id, key=token_to_id.__getitem__))
    geometry = geometry or load_geometry(model_dir)
    problems = []
    if len(vocab) != geometry.vocab_size:
        problems.append(f"it has {len(vocab)} tokens but config.json's vocab_size (the logits' width) is "
                        f"{geometry.vocab_size}")  # fmt: skip
    if BLANK_TOKEN not in token_to_id or token_to_id[BLANK_TOKEN] != geometry.pad_token_id:
        problems.append(f"the CTC blank {BLANK_TOKEN} has id {token_to_id.get(BLANK_TOKEN)} but config.json's "
                        f"pad_token_id is {geometry.pad_token_id}")  # fmt: skip
    if WORD_DELIMITER not in token_to_id:
        problems.append(f"it has no word delimiter {WORD_DELIMITER!r}")
    if problems:
        raise PipelineError(
            f"{path} does not fit the model: {'; '.join(problems)}. Use the vocab.json saved with the model's "
            "weights and config.json (all from one model dir)."
        )
    return vocab


def load_ctc_model(model_dir: str) -> "Wav2Vec2ForCTC":
    """Load Wav2Vec2ForCTC in eval mode from a local dir, or from the hub given `owner/name`; a local dir's
    vocabulary is checked against its config first."""
    from transformers import Wav2Vec2ForCTC

    if not is_hub_id(model_dir):
        check_model_dir(Path(model_dir), (CONFIG_FILE,))
        if (Path(model_dir) / VOCAB_FILE).is_file():
            load_vocab(Path(model_dir))
        else:
            load_geometry(Path(model_dir))
    try:
        model = Wav2Vec2ForCTC.from_pretrained(model_dir)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise PipelineError(f"cannot load a model from {model_dir}: {error}. {HOW_TO_GET_MODEL}.") from error
    return model.eval()


def load_feature_extractor(model_dir: Path | None) -> "Wav2Vec2FeatureExtractor":
    """The model's own feature-extractor settings; without a dir, the defaults, which are base-960h's."""
    from transformers import Wav2Vec2FeatureExtractor

    if model_dir is None:
        return Wav2Vec2FeatureExtractor()
    path = model_file(model_dir, PREPROCESSOR_FILE)
    settings = _read_json_object(path)
    try:
        feature_extractor = Wav2Vec2FeatureExtractor.from_dict(settings)
    except (ValueError, TypeError, KeyError) as error:
        raise PipelineError(f"{path}: not a feature-extractor config ({error}). {HOW_TO_GET_MODEL}.") from error
    if feature_extractor.sampling_rate != SAMPLE_RATE or feature_extractor.feature_size != 1:
        raise PipelineError(
            f"{path}: sampling_rate {feature_extractor.sampling_rate}, feature_size {feature_extractor.feature_size}; "
            f"this pipeline feeds wav2vec2 raw {SAMPLE_RATE} Hz audio (sampling_rate {SAMPLE_RATE}, feature_size 1)"
        )
    return feature_extractor


def preprocessor_settings(model_dir: Path | None) -> dict[str, Any]:
    """What normalisation the bins get, as recorded in their run key (read without transformers)."""
    return {} if model_dir is None else _read_json_object(model_file(model_dir, PREPROCESSOR_FILE))

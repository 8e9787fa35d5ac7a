"""facebook/wav2vec2-base-960h: its constants, its files, and loading them from a local dir or the hub."""

import json
import re
from pathlib import Path

from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from wav2vec2_pipeline.errors import PipelineError

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


def num_frames(num_samples: int, config: Wav2Vec2Config | None = None) -> int:
    """Logit frames the convolutional feature encoder makes of `num_samples` (312 for 100000)."""
    config = config or Wav2Vec2Config()
    length = num_samples
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        length = (length - kernel) // stride + 1
    return length


def is_hub_id(name: str) -> bool:
    """True for an `owner/name` string that is not a local path, so it can only mean the hub."""
    return not Path(name).exists() and bool(_HUB_ID.match(name))


def check_model_dir(model_dir: Path, needed: tuple[str, ...]) -> None:
    """Fail with the list of missing files unless `model_dir` holds all of `needed` and weights."""
    if not model_dir.is_dir():
        raise PipelineError(f"model dir {model_dir} does not exist. {HOW_TO_GET_MODEL}.")
    missing = [name for name in needed if not (model_dir / name).is_file()]
    if not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise PipelineError(f"model dir {model_dir} is incomplete: missing {', '.join(missing)}. {HOW_TO_GET_MODEL}.")


def load_ctc_model(model_dir: str) -> Wav2Vec2ForCTC:
    """Load Wav2Vec2ForCTC in eval mode from a local dir, or from the hub given `owner/name`."""
    if not is_hub_id(model_dir):
        check_model_dir(Path(model_dir), (CONFIG_FILE,))
    try:
        model = Wav2Vec2ForCTC.from_pretrained(model_dir)
    except OSError as error:
        raise PipelineError(f"cannot load a model from {model_dir}: {error}. {HOW_TO_GET_MODEL}.") from error
    return model.eval()


def model_file(model_dir: Path, name: str) -> Path:
    path = model_dir / name
    if not path.is_file():
        raise PipelineError(f"{path} not found. {HOW_TO_GET_MODEL}.")
    return path


def load_feature_extractor(model_dir: Path | None) -> Wav2Vec2FeatureExtractor:
    """The model's own feature-extractor settings; without a dir, the defaults, which are base-960h's."""
    if model_dir is None:
        return Wav2Vec2FeatureExtractor()
    return Wav2Vec2FeatureExtractor.from_pretrained(model_file(model_dir, PREPROCESSOR_FILE).parent)


def load_vocab(model_dir: Path | None) -> tuple[str, ...]:
    """Token id -> token from the dir's vocab.json; without a dir, base-960h's vocabulary."""
    if model_dir is None:
        return BASE_960H_VOCAB
    path = model_file(model_dir, VOCAB_FILE)
    token_to_id: dict[str, int] = json.loads(path.read_text(encoding="utf-8"))
    if sorted(token_to_id.values()) != list(range(len(token_to_id))):
        raise PipelineError(f"{path}: token ids are not 0..{len(token_to_id) - 1}; is it a CTC vocab.json?")
    return tuple(sorted(token_to_id, key=token_to_id.__getitem__))


def load_config(model_dir: Path | None) -> Wav2Vec2Config:
    """The dir's config.json (for its conv strides); without a dir, the defaults, which are base's."""
    if model_dir is None:
        return Wav2Vec2Config()
    return Wav2Vec2Config.from_pretrained(model_file(model_dir, CONFIG_FILE).parent)

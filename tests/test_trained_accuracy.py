"""CER on the model really trained here (../shared/models), for what can move a transcript: the CPU paths `auto`
may take, on every branch of the CPU-flag decision, and the README's recommended layout, each within 0.5 points
of fp32 on each utterance alone (the issue's bar). The accuracy benchmark has the full table."""

import functools
import shutil

import pytest

from benchmarks.accuracy import eager_alone, rates
from tests.conftest import REPO_ROOT
from wav2vec2_pipeline import backends, calibration, device
from wav2vec2_pipeline.backends import create_backend
from wav2vec2_pipeline.core import transcribe
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.export import save_torchscript, trace
from wav2vec2_pipeline.model import MAX_SAMPLES, load_geometry, load_vocab
from wav2vec2_pipeline.planning import CHUNK, Layout

SHARED = REPO_ROOT.parent / "shared"
MODEL = SHARED / "models" / "wav2vec2-espeak-small"
DATA = SHARED / "data" / "espeak-test" / "LibriSpeech" / "test-clean"
pytestmark = pytest.mark.skipif(not (MODEL.is_dir() and DATA.is_dir()), reason="../shared has no trained model")
BAR = 0.5
"""CER points a path may lose against fp32, each utterance alone."""
BF16 = frozenset({"avx512_bf16"})
VNNI = frozenset({"avx512_vnni"})


@functools.cache
def trained():
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    from wav2vec2_pipeline.audio import read_audio
    from wav2vec2_pipeline.librispeech import find_utterances

    utterances = [u for u in find_utterances(DATA) if not u.utt_id.startswith("8003")]  # the <= 6.2 s sets
    audio = {u.utt_id: read_audio(u.audio_path) for u in utterances}
    fe = Wav2Vec2FeatureExtractor.from_pretrained(MODEL)
    geometry = load_geometry(MODEL)
    vocab = load_vocab(MODEL, geometry)
    model = Wav2Vec2ForCTC.from_pretrained(MODEL).eval()
    references = {u.utt_id: u.transcript for u in utterances}
    return model, audio, references, fe, geometry, vocab


def cer(hypotheses: dict[str, str]) -> float:
    _, audio, references, *_ = trained()
    return float(rates(references, hypotheses, sorted(audio)).split(" / ")[0])


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    model, audio, _, fe, _, vocab = trained()
    traced = tmp_path_factory.mktemp("trained") / "traced.pth"
    save_torchscript(trace(model, MAX_SAMPLES), traced)
    fp32_alone = cer(eager_alone(model, audio, fe, vocab))
    yield traced, fp32_alone
    shutil.rmtree(traced.parent)


def recommended_cer(name: str, traced) -> float:
    """The README's full run: --exact rows, batch size 8, on backend `name`."""
    _, audio, _, fe, geometry, vocab = trained()
    layout = Layout((MAX_SAMPLES,), CHUNK, geometry=geometry, exact=True)
    backend = create_backend(name, DeviceOptions(),
                             lambda: calibration.of_audio(audio, batch_size=8, layout=layout, feature_extractor=fe))
    backend.load(traced)
    return cer(transcribe(audio, backend, batch_size=8, layout=layout, feature_extractor=fe, vocab=vocab))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(BF16 | VNNI, "openvino-int8"), (VNNI, "openvino-int8"), (BF16, "openvino-bf16"), (frozenset(), "openvino")],
    ids=["bf16+vnni", "vnni only", "bf16 only", "neither"],
)
def test_what_auto_takes_on_each_kind_of_cpu_is_as_accurate_as_fp32(monkeypatch, setting, flags, expected) -> None:
    bf16 = backends.OpenVinoBf16Backend
    if bf16.cpu_supports(flags) and not bf16.available():
        pytest.skip("this CPU has no bf16 instructions to run the bf16 branch on")
    monkeypatch.setattr(backends, "cpu_flags", lambda: flags)  # int8 takes its float precision from the flags
    name = device.cpu_default(flags, lambda module: True)
    assert name == expected
    traced, fp32_alone = setting
    assert recommended_cer(name, traced) <= fp32_alone + BAR, name

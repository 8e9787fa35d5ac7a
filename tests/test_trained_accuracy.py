"""CER on the model really trained here (../shared/models), for what can move a transcript: the README's run
(whole utterances, `auto`'s CPU path) at batch sizes 1, 8 and 16, and the path `auto` takes on every CPU class,
each within 0.5 points of CER of fp32 on each utterance alone on every speaker set (the bar `auto` is chosen by).
The accuracy benchmark has the full table."""

import functools
import json
import os
import shutil
import subprocess
import sys

import pytest

from benchmarks.accuracy import eager_alone, rates
from tests.conftest import REPO_ROOT
from wav2vec2_pipeline import backends, calibration, device
from wav2vec2_pipeline.backends import create_backend, resolve
from wav2vec2_pipeline.core import transcribe
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.export import save_torchscript, trace
from wav2vec2_pipeline.model import MAX_SAMPLES, load_geometry, load_vocab
from wav2vec2_pipeline.planning import Layout

SHARED = REPO_ROOT.parent / "shared"
MODEL = SHARED / "models" / "wav2vec2-espeak-small"
DATA = SHARED / "data" / "espeak-test" / "LibriSpeech" / "test-clean"
pytestmark = pytest.mark.skipif(not (MODEL.is_dir() and DATA.is_dir()), reason="../shared has no trained model")
BAR = 0.5
"""CER points a path may lose against fp32, each utterance alone."""


@functools.cache
def trained():
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    from wav2vec2_pipeline.audio import read_audio
    from wav2vec2_pipeline.librispeech import find_utterances

    utterances = find_utterances(DATA)
    audio = {u.utt_id: read_audio(u.audio_path) for u in utterances}
    fe = Wav2Vec2FeatureExtractor.from_pretrained(MODEL)
    geometry = load_geometry(MODEL)
    vocab = load_vocab(MODEL, geometry)
    model = Wav2Vec2ForCTC.from_pretrained(MODEL).eval()
    references = {u.utt_id: u.transcript for u in utterances}
    return model, audio, references, fe, geometry, vocab


def cer_by_set(hypotheses: dict[str, str]) -> dict[str, float]:
    """CER in % of each speaker set (8001 seen voices, 8002 unseen, 8003 15-25 s)."""
    _, audio, references, *_ = trained()
    sets: dict[str, list[str]] = {}
    for utt_id in sorted(audio):
        sets.setdefault(utt_id.split("-")[0], []).append(utt_id)
    return {name: float(rates(references, hypotheses, ids).split(" / ")[0]) for name, ids in sets.items()}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    model, audio, _, fe, _, vocab = trained()
    traced = tmp_path_factory.mktemp("trained") / "traced.pth"
    save_torchscript(trace(model, MAX_SAMPLES), traced)
    fp32_alone = cer_by_set(eager_alone(model, audio, fe, vocab))
    yield traced, fp32_alone
    shutil.rmtree(traced.parent)


def readme_run(name: str, traced, batch_size: int) -> dict[str, float]:
    """The README's full run in memory: whole utterances (the default layout), on backend `name`."""
    _, audio, _, fe, geometry, vocab = trained()
    layout = Layout.whole(geometry)
    backend = create_backend(name, DeviceOptions(), lambda: calibration.of_audio(
        audio, batch_size=batch_size, layout=layout, feature_extractor=fe))  # fmt: skip
    backend.load(traced)
    return cer_by_set(transcribe(audio, backend, batch_size=batch_size, layout=layout, feature_extractor=fe,
                                 vocab=vocab))  # fmt: skip


def within_bar(cer: dict[str, float], fp32_alone: dict[str, float]) -> bool:
    return set(cer) == {"8001", "8002", "8003"} and all(cer[s] <= fp32_alone[s] + BAR for s in fp32_alone)


@pytest.mark.parametrize("batch_size", [1, 8, 16])
def test_the_readme_run_is_as_accurate_as_each_utterance_alone_on_every_speaker_set(setting, batch_size) -> None:
    traced, fp32_alone = setting
    cer = readme_run(resolve("auto"), traced, batch_size)
    assert within_bar(cer, fp32_alone), (resolve("auto"), cer, fp32_alone)


@pytest.mark.parametrize("cpu_class", list(device.CLASS_EXAMPLES))
def test_what_auto_takes_on_each_cpu_class_is_as_accurate_as_fp32(monkeypatch, setting, cpu_class) -> None:
    flags = device.CLASS_EXAMPLES[cpu_class]
    assert device.cpu_class(flags) == cpu_class
    name = device.cpu_default(flags, lambda module: True)
    uses_bf16 = name in ("openvino-bf16", "openvino-int8") and not flags.isdisjoint(device.BF16_FLAGS)
    if uses_bf16 and not backends.OpenVinoBf16Backend.cpu_supports(device.cpu_flags()):
        pytest.skip(f"this CPU has no bf16 instructions to run {name} as a {cpu_class} CPU does")
    monkeypatch.setattr(backends, "cpu_flags", lambda: flags)  # int8 takes its float precision from the flags
    traced, fp32_alone = setting
    cer = readme_run(name, traced, 8)
    assert within_bar(cer, fp32_alone), (name, cer, fp32_alone)


def test_int8_on_the_avx2_class_instructions_is_as_accurate_as_fp32(setting) -> None:
    """Without VNNI, int8 products run on `vpmaddubsw`, whose 16-bit sums can saturate where VNNI's cannot: on an
    AVX-512 CPU, oneDNN's ISA cap makes OpenVINO use those instructions (and the pipeline see the avx2 class, so
    int8's float ops are fp32), in a process of its own; on an AVX2 CPU they are what runs anyway."""
    traced, fp32_alone = setting
    env = dict(os.environ)
    if "avx512f" in device.reported_flags():
        env[device.ISA_CAP] = "AVX512_CORE"
    code = ("import json, pathlib; from tests.test_trained_accuracy import readme_run; "
            f"print(json.dumps(readme_run('openvino-int8', pathlib.Path({str(traced)!r}), 8)))")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    cer = json.loads(run.stdout.splitlines()[-1])
    assert within_bar(cer, fp32_alone), (cer, fp32_alone)

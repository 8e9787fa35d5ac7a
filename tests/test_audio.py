import numpy as np
import pytest
from transformers import Wav2Vec2FeatureExtractor

from tests.conftest import write_flac
from wav2vec2_pipeline.audio import audio_num_samples, fit_length, normalize, read_audio
from wav2vec2_pipeline.errors import PipelineError


def test_fit_length_pads_with_zeros_and_cuts() -> None:
    audio = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(audio, 8), [1, 2, 3, 4, 5, 0, 0, 0])
    np.testing.assert_array_equal(fit_length(audio, 3), [1, 2, 3])
    np.testing.assert_array_equal(fit_length(audio, 5), audio)
    assert fit_length(audio, 8).dtype == np.float32


def test_normalize_is_per_utterance_zero_mean_unit_variance() -> None:
    audio = np.random.default_rng(0).uniform(0.2, 0.6, 4000).astype(np.float32)
    out = normalize(audio, Wav2Vec2FeatureExtractor())
    assert out.shape == audio.shape and out.dtype == np.float32
    assert abs(out.mean()) < 1e-5 and out.std() == pytest.approx(1.0, abs=1e-3)


def test_normalize_follows_the_model_settings_not_a_fixed_formula() -> None:
    audio = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    np.testing.assert_array_equal(normalize(audio, Wav2Vec2FeatureExtractor(do_normalize=False)), audio)


def test_reads_a_16khz_mono_flac(tmp_path) -> None:
    write_flac(tmp_path / "a.flac", 1234, seed=0)
    assert audio_num_samples(tmp_path / "a.flac") == 1234
    assert read_audio(tmp_path / "a.flac").shape == (1234,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"sample_rate": 8000}, "8000 Hz; the model needs 16000 Hz"), ({"channels": 2}, "2 channels")],
)
def test_rejects_other_rates_and_stereo_naming_the_file(tmp_path, kwargs, message) -> None:
    write_flac(tmp_path / "bad.flac", 800, seed=0, **kwargs)
    with pytest.raises(PipelineError, match=message) as error:
        audio_num_samples(tmp_path / "bad.flac")
    assert "bad.flac" in str(error.value)


def test_rejects_a_file_that_is_not_audio(tmp_path) -> None:
    (tmp_path / "x.flac").write_bytes(b"not a flac file at all")
    with pytest.raises(PipelineError, match=r"x\.flac"):
        audio_num_samples(tmp_path / "x.flac")


def test_the_libsndfile_reader_is_still_reachable_through_soundfile(tmp_path) -> None:
    """audio.readf_float is the one use of soundfile's private names: a release that drops or changes them must
    fail here, loudly, rather than in a user's run."""
    import soundfile as sf

    from wav2vec2_pipeline.audio import readf_float

    assert hasattr(sf, "_ffi") and hasattr(sf._snd, "sf_readf_float") and hasattr(sf._snd, "sf_error")
    path = tmp_path / "a.flac"
    write_flac(path, 70_000, seed=3)
    with sf.SoundFile(path) as sound:
        assert hasattr(sound, "_file")
        block = np.zeros((65_536, 1), dtype=np.float32)
        assert readf_float(sound, block) == 65_536
        expected = sf.read(path, dtype="float32", always_2d=True)[0]
        np.testing.assert_array_equal(block, expected[:65_536])
        assert readf_float(sound, block) == 70_000 - 65_536
        assert readf_float(sound, block) == 0


def test_a_soundfile_without_the_reader_is_one_line() -> None:
    from wav2vec2_pipeline.audio import readf_float

    class Release:  # a SoundFile of a release whose private handle is gone
        pass

    with pytest.raises(PipelineError, match=r"^soundfile .* no longer exposes libsndfile's reader"):
        readf_float(Release(), np.zeros((16, 1), dtype=np.float32))

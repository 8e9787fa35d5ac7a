"""The model's files and geometry: frame counts, vocabulary, tracing, and model dirs that are incomplete, broken
or do not fit together, refused by the scripts that read them."""

import json
import shutil

import pytest
import torch
from transformers import Wav2Vec2ForCTC

from benchmarks.random_base_model import tiny_config
from tests.conftest import copy_run, fails, postprocess_fails, tree, write_librispeech_tree
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.export import check_trace, trace
from wav2vec2_pipeline.model import (
    BASE_960H_VOCAB,
    check_model_dir,
    load_ctc_model,
    load_vocab,
    num_frames,
)


@pytest.mark.parametrize("num_samples", [400, 16_000, 99_999, 100_000, 100_001, 560_000])
def test_num_frames_matches_the_model_own_formula(num_samples) -> None:
    model = Wav2Vec2ForCTC(tiny_config())
    assert num_frames(num_samples) == int(model._get_feat_extract_output_lengths(num_samples))


def test_num_frames_of_the_static_window_is_312() -> None:
    assert num_frames(100_000) == 312


def test_vocab_from_the_dir_is_base_960h(tiny_model_dir) -> None:
    assert load_vocab(tiny_model_dir) == BASE_960H_VOCAB
    assert load_vocab(None) == BASE_960H_VOCAB
    assert BASE_960H_VOCAB.index("|") == 4 and len(BASE_960H_VOCAB) == 32


def test_incomplete_model_dir_lists_what_is_missing_and_how_to_get_it(tmp_path) -> None:
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(PipelineError) as error:
        check_model_dir(tmp_path, ("config.json", "vocab.json"))
    message = str(error.value)
    assert "missing config.json, model.safetensors or pytorch_model.bin" in message
    assert "hf download facebook/wav2vec2-base-960h" in message
    with pytest.raises(PipelineError, match="does not exist"):
        load_ctc_model(str(tmp_path / "absent"))


def test_trace_matches_eager_at_another_batch_size(tiny_model_dir) -> None:
    model = load_ctc_model(str(tiny_model_dir))
    traced = trace(model, 16_000)
    check = check_trace(model, traced, 16_000)
    assert check.output_shape == (2, num_frames(16_000), 32)
    assert check.max_abs_diff < 1e-4
    batch = torch.randn(5, 16_000)
    with torch.no_grad():
        torch.testing.assert_close(traced(batch), model(batch).logits, atol=1e-4, rtol=1e-4)


def test_trace_check_fails_when_the_module_differs(tiny_model_dir) -> None:
    model = load_ctc_model(str(tiny_model_dir))
    other = Wav2Vec2ForCTC(tiny_config()).eval()  # other random weights
    with pytest.raises(PipelineError, match="differs from the eager model"):
        check_trace(model, trace(other, 16_000), 16_000)


# --- model dirs the scripts refuse ---


@pytest.mark.parametrize(("change", "message"), [
    ({"vocab_size": 31}, "it has 32 tokens but config.json's vocab_size (the logits' width) is 31"),
    ({"pad_token_id": 4}, "the CTC blank <pad> has id 0 but config.json's pad_token_id is 4"),
])  # fmt: skip
def test_a_vocabulary_that_does_not_fit_the_config_is_refused_at_export_and_postprocess(
    done, tmp_path, tiny_model_dir, change, message
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | change))
    assert message in fails("wav2vec2_pth2ts.py", "--pytorch_model_dir", model, "--output", tmp_path / "t.pth")
    assert not (tmp_path / "t.pth").exists()
    assert message in postprocess_fails(copy_run(done, tmp_path), "--pytorch_model_dir", model)


def test_a_feature_extractor_for_another_rate_is_refused_before_the_previous_run_is_touched(
    done, tmp_path, tiny_model_dir
) -> None:
    work = copy_run(done, tmp_path)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    settings = json.loads((model / "preprocessor_config.json").read_text())
    (model / "preprocessor_config.json").write_text(json.dumps(settings | {"sampling_rate": 8000}))
    write_librispeech_tree(work / "ls", {"1-2-0000": 20_000})
    before = tree(work)
    message = fails("wav2vec2_preprocess.py", "--input", work / "ls", "--batch_size", 3, "--output", work / "in",
                    "--data_path", work / "data", "--pytorch_model_dir", model)  # fmt: skip
    assert "sampling_rate 8000" in message and tree(work) == before


@pytest.mark.parametrize("broken", ["config.json", "vocab.json", "preprocessor_config.json"])
def test_broken_model_files_are_named_by_preprocess_and_postprocess(done, tmp_path, tiny_model_dir, broken) -> None:
    work = copy_run(done, tmp_path)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / broken).write_text('{"truncated": ')
    if broken != "preprocessor_config.json":
        assert f"{model / broken} cannot be read as JSON" in postprocess_fails(work, "--pytorch_model_dir", model)
    if broken != "vocab.json":
        message = fails("wav2vec2_preprocess.py", "--input", work / "in", "--batch_size", 3, "--output",
                        tmp_path / "o", "--data_path", tmp_path / "d", "--pytorch_model_dir", model)  # fmt: skip
        assert f"{model / broken} cannot be read as JSON" in message

"""The Ray Data driver: both modes byte-identical to the four-stage path, re-runs that run only what is missing,
an actor killed and a node removed mid-run, and bad options refused in one line."""

import json
import os
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, fails, run_main, run_script, scored

ray = pytest.importorskip("ray", reason="ray is not installed: pip install -r requirements-ray.txt")

from wav2vec2_pipeline.cluster import ClusterOptions, ray_init_args  # noqa: E402
from wav2vec2_pipeline.distributed import ModelActor, run_audio, run_bins  # noqa: E402
from wav2vec2_pipeline.errors import PipelineError  # noqa: E402
from wav2vec2_pipeline.layout_args import LayoutFlags, add_input_arguments, preprocess_options  # noqa: E402
from wav2vec2_pipeline.options import add_options  # noqa: E402

MINI = SHARED_DATA / "librispeech-mini" / "LibriSpeech" / "test-clean"
CPU = ("--backend", "torchscript", "--threads", 1, "--warmup_runs", 0, "--timed_runs", 1)
ONE_THREAD = ClusterOptions(actors=2, threads_per_actor=1, bins_per_task=1)


def files(directory: Path, pattern: str = "*.bin") -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob(pattern))}


def four_stages(dataset_dir: Path, work: Path, batch_size: int, traced: Path, model_dir: Path, *layout: object) -> dict:
    """preprocess + compile.py + postprocess, as a user types them; returns the report."""
    run_main("wav2vec2_preprocess.py", "--input", dataset_dir, "--batch_size", batch_size, "--output", work / "in",
             "--data_path", work / "data", "--pytorch_model_dir", model_dir, *layout)  # fmt: skip
    run_main("compile.py", "--batch_size", batch_size, "--input_path", work / "in", "--output_path", work / "out",
             "--torchscript_path", traced, *CPU)  # fmt: skip
    return postprocess(work / "out", work / "data", batch_size)


def postprocess(logits_dir: Path, data_path: Path, batch_size: int) -> dict:
    run_main("wav2vec2_postprocess.py", "--input", logits_dir, "--batch_size", batch_size, "--data_path", data_path)
    return scored(data_path / f"report_bs{batch_size}.json")


def layout_options(dataset_dir: Path, batch_size: int, model_dir: Path, *layout: str):
    """PreprocessOptions from the command-line options, parsed as the scripts parse them."""
    from wav2vec2_pipeline.errors import ArgumentParser

    parser = ArgumentParser()
    add_input_arguments(parser)
    add_options(parser, LayoutFlags)
    parser.add_argument("--batch_size", type=int)
    args = parser.parse_args(["--input", str(dataset_dir), "--batch_size", str(batch_size),
                              "--pytorch_model_dir", str(model_dir), *layout])  # fmt: skip
    return preprocess_options(args)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the tests of this module that need no cluster of their own (starting one takes seconds)."""
    ray.init(**ray_init_args(ONE_THREAD))
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_both_modes_equal_the_four_stage_path_byte_for_byte(
    tmp_path, dataset, traced_path, tiny_model_dir, local_ray
) -> None:
    layout = ("--max_samples", "100000", "--long_audio", "chunk")  # bins of several lengths
    four = four_stages(dataset[0], tmp_path / "four", 2, traced_path, tiny_model_dir, *layout)

    from_bins, runner = run_bins(tmp_path / "four" / "in", tmp_path / "a", traced_path, 2, "torchscript", ONE_THREAD,
                                 "test")  # fmt: skip
    assert files(tmp_path / "a") == files(tmp_path / "four" / "out") and len(files(tmp_path / "a")) == 4
    assert files(tmp_path / "a" / ".bins", "batch_*.json") == files(tmp_path / "four" / "out" / ".bins", "batch_*.json")
    expected = json.loads((tmp_path / "four" / "out" / "manifest.json").read_text())
    assert from_bins.manifest.run_key == expected["run_key"] and from_bins.manifest.throughput is None
    rows = expected["stage"]["rows_run"]
    assert sum(f.bins for f in runner.actors.values()) == 4 and from_bins.stage.rows_run == rows

    options = layout_options(dataset[0], 2, tiny_model_dir, *layout)
    fused, runner = run_audio(dataset[0], tmp_path / "b", tmp_path / "b_data", traced_path, options, "torchscript",
                              ONE_THREAD, "test")  # fmt: skip
    assert files(tmp_path / "b") == files(tmp_path / "four" / "out")
    assert files(tmp_path / "b" / ".bins", "batch_*.json") == files(tmp_path / "four" / "out" / ".bins", "batch_*.json")
    assert files(tmp_path / "b_data", "*.json") == files(tmp_path / "four" / "data", "batch_i_*.json")
    assert files(tmp_path / "b_data", "*.txt") == files(tmp_path / "four" / "data", "*.txt")
    assert not list((tmp_path / "b").glob("**/input*.bin")) and fused.manifest.run_key == expected["run_key"]
    assert postprocess(tmp_path / "b", tmp_path / "b_data", 2) == four

    # a re-run runs only what is missing: a logits bin lost, another bin's record lost
    (tmp_path / "b" / "batch_1.bin").unlink()
    (tmp_path / "b" / ".bins" / "batch_3.bin.json").unlink()
    again, runner = run_audio(dataset[0], tmp_path / "b", tmp_path / "b_data", traced_path, options, "torchscript",
                              ONE_THREAD, "test")  # fmt: skip
    assert sum(f.bins for f in runner.actors.values()) == 2 and again.stage.rows_run < rows
    assert files(tmp_path / "b") == files(tmp_path / "four" / "out")
    finished, _ = run_audio(dataset[0], tmp_path / "b", tmp_path / "b_data", traced_path, options, "torchscript",
                            ONE_THREAD, "test")  # fmt: skip
    assert finished.up_to_date and finished.manifest == again.manifest

    # this script's one-line error as a command (the other scripts': tests/test_cli.py)
    unreachable = fails("wav2vec2_distributed.py", "--input_path", tmp_path / "four" / "in", "--output_path",
                        tmp_path / "x", "--batch_size", 2, "--torchscript_path", traced_path, "--backend",
                        "torchscript", "--address", "127.0.0.1:1", as_process=True)  # fmt: skip
    assert "error: cannot reach a Ray cluster at 127.0.0.1:1" in unreachable
    assert not (tmp_path / "x").exists()

    # the script, as a user runs it, on the same Ray (--address)
    printed = run_script("wav2vec2_distributed.py", "--address", local_ray, "--input", dataset[0], "--data_path",
                         tmp_path / "c_data", "--output_path", tmp_path / "c", "--torchscript_path", traced_path,
                         "--batch_size", 2, "--pytorch_model_dir", tiny_model_dir, *layout, "--backend", "torchscript",
                         "--threads_per_actor", 1, "--actors", 2).stdout  # fmt: skip
    last = printed.strip().splitlines()[-1]
    assert last.startswith(f"{rows} rows, ") and "audio seconds per wall second" in last and "per actor: " in last
    assert files(tmp_path / "c") == files(tmp_path / "four" / "out")
    assert postprocess(tmp_path / "c", tmp_path / "c_data", 2) == four


def test_a_backend_calibrated_on_the_speech_gives_compile_py_s_bins_in_both_modes(
    tmp_path, dataset, traced_path, tiny_model_dir, local_ray, monkeypatch
) -> None:
    """openvino-int8 (what auto takes on a CPU with int8 dot products) calibrates on the speech of a few bins: from
    audio the driver makes those bins in memory, with the same key, so the same quantised model runs. Paths are
    given relative to a dir the Ray workers did not start in, as on a cluster: what the actors read (audio, the
    model dir, calibration bins) must reach them absolute."""
    pytest.importorskip("nncf", reason="openvino-int8 needs nncf and openvino")
    layout = ("--layout", "static", "--long_audio", "chunk")
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 2, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--pytorch_model_dir", tiny_model_dir, *layout)  # fmt: skip
    run_main("compile.py", "--batch_size", 2, "--input_path", tmp_path / "in", "--output_path", tmp_path / "clean",
             "--torchscript_path", traced_path, "--backend", "openvino-int8", "--threads", 1, "--warmup_runs", 0,
             "--timed_runs", 1)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert ray.get(ray.remote(lambda: os.getcwd()).remote()) != str(tmp_path), "the workers start elsewhere"
    dataset_dir, model_dir = (Path(os.path.relpath(p, tmp_path)) for p in (dataset[0], tiny_model_dir))
    run_bins(Path("in"), Path("a"), traced_path, 2, "openvino-int8", ONE_THREAD, "test")
    options = layout_options(dataset_dir, 2, model_dir, *layout)
    run_audio(dataset_dir, Path("b"), Path("b_data"), traced_path, options, "openvino-int8", ONE_THREAD, "test")
    clean = json.loads((tmp_path / "clean" / "manifest.json").read_text())
    for mode in ("a", "b"):
        assert files(tmp_path / mode) == files(tmp_path / "clean") and len(files(tmp_path / "clean")) == 4
        ours = json.loads((tmp_path / mode / "manifest.json").read_text())
        assert (ours["run_key"], ours["backend_options"]) == (clean["run_key"], clean["backend_options"])


def dies_once(marker: Path) -> type:
    """A model actor that kills its own process on its second call, once per test (the marker survives restarts)."""

    class DiesOnce(ModelActor):
        calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 2 and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)
            return super().__call__(batch)

    return DiesOnce


def test_an_actor_killed_mid_run_is_restarted_and_the_bins_equal_a_clean_run(
    tmp_path, dataset, traced_path, local_ray
) -> None:
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "static", "--long_audio", "chunk")  # fmt: skip
    run_main("compile.py", "--batch_size", 1, "--input_path", tmp_path / "in", "--output_path", tmp_path / "clean",
             "--torchscript_path", traced_path, *CPU)  # fmt: skip
    marker = tmp_path / "killed"
    cluster = ClusterOptions(actors=1, threads_per_actor=1, bins_per_task=1)
    result, runner = run_bins(tmp_path / "in", tmp_path / "out", traced_path, 1, "torchscript", cluster, "test",
                              actor=dies_once(marker))  # fmt: skip
    assert marker.exists()  # it did die, after its first bin
    assert result.manifest is not None and result.stage.bins_run == 8
    assert len(runner.actors) == 2  # the restarted actor is another process
    assert files(tmp_path / "out") == files(tmp_path / "clean") and len(files(tmp_path / "clean")) == 8


def dies_on_its_second_call() -> type:
    """A model actor whose every process dies on its second call: restarts run out, and the job fails."""

    class DiesOnItsSecondCall(ModelActor):
        calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 2:
                os._exit(1)
            return super().__call__(batch)

    return DiesOnItsSecondCall


def test_a_job_that_fails_keeps_its_bins_and_a_re_run_runs_only_the_rest(tmp_path, dataset, traced_path, local_ray):
    from wav2vec2_pipeline.distributed import ACTOR_RESTARTS

    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "static", "--long_audio", "chunk")  # fmt: skip
    run_main("compile.py", "--batch_size", 1, "--input_path", tmp_path / "in", "--output_path", tmp_path / "clean",
             "--torchscript_path", traced_path, *CPU)  # fmt: skip
    cluster = ClusterOptions(actors=1, threads_per_actor=1, bins_per_task=1)
    with pytest.raises(PipelineError, match="run the same command again to run the rest"):
        run_bins(tmp_path / "in", tmp_path / "out", traced_path, 1, "torchscript", cluster, "test",
                 actor=dies_on_its_second_call())  # fmt: skip
    kept = len(list((tmp_path / "out" / ".bins").glob("batch_*.json")))
    assert 1 <= kept <= 1 + ACTOR_RESTARTS < 8 and not (tmp_path / "out" / "manifest.json").exists()
    again, runner = run_bins(tmp_path / "in", tmp_path / "out", traced_path, 1, "torchscript", cluster, "test")
    assert sum(f.bins for f in runner.actors.values()) == 8 - kept and again.stage.bins_run == 8
    assert files(tmp_path / "out") == files(tmp_path / "clean")


def raises(error: Exception) -> type:
    class Raises(ModelActor):
        def run(self, data, shape, rows_used):
            raise error

    return Raises


def test_an_error_in_an_actor_is_one_line_on_the_driver(tmp_path, dataset, traced_path, local_ray) -> None:
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 4, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data")  # fmt: skip
    cluster = ClusterOptions(actors=1, threads_per_actor=1)
    with pytest.raises(PipelineError) as raised:  # a check that fails in a worker: its own message
        run_bins(tmp_path / "in", tmp_path / "a", traced_path, 4, "torchscript", cluster, "test",
                 actor=raises(PipelineError("bin 7 is not what its record says")))  # fmt: skip
    assert str(raised.value) == "bin 7 is not what its record says"
    with pytest.raises(PipelineError) as raised:  # anything else: what Ray says, on one line, and what to do
        run_bins(tmp_path / "in", tmp_path / "b", traced_path, 4, "torchscript", cluster, "test",
                 actor=raises(RuntimeError("out of device memory")))  # fmt: skip
    message = str(raised.value)
    assert message.startswith("the Ray job stopped (") and "run the same command again" in message
    assert "\n" not in message and "\x1b" not in message


@pytest.mark.skipif(not MINI.is_dir(), reason=f"{MINI} not present")
def test_fused_mode_reports_the_real_subset_as_the_four_stages_do(
    tmp_path, traced_path, tiny_model_dir, local_ray
) -> None:
    layout = ("--max_samples", "100000", "--long_audio", "chunk")
    four = four_stages(MINI, tmp_path / "four", 4, traced_path, tiny_model_dir, *layout)
    options = layout_options(MINI, 4, tiny_model_dir, *layout)
    run_audio(MINI, tmp_path / "out", tmp_path / "data", traced_path, options, "torchscript", ONE_THREAD, "test")
    fused = postprocess(tmp_path / "out", tmp_path / "data", 4)
    assert len(fused["utterances"]) == 7
    for ours, theirs in zip(fused["utterances"], four["utterances"], strict=True):
        assert ours == theirs, ours["utt_id"]
    assert fused == four


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--input_path", "x", "--input", "y"), "not both"),
        ((), "pass --input_path"),
        (("--input_path", "x", "--layout", "whole"), "--layout is for audio (--input)"),
        (("--input_path", "x", "--data_path", "d"), "--data_path is for audio (--input)"),
        (("--input", "x"), "--input needs --data_path"),
        (("--input_path", "x", "--actors", 0), "--actors must be at least 1"),
        (("--input_path", "x", "--threads_per_actor", 0), "--threads_per_actor must be between 1"),
        (("--input_path", "x", "--gpus_per_actor", 1, "--npus_per_actor", 1), "pass one of them"),
        (("--input_path", "x", "--gpus_per_actor", -1), "--gpus_per_actor must be 0 or more"),
        (("--input_path", "x", "--backend", "cuda"), "only with --gpus_per_actor"),
        (("--input_path", "x", "--bins_per_task", 0), "--bins_per_task must be at least 1"),
        (("--input_path", "x", "--aie_optimization_level", -1), "--aie_optimization_level must be 0 or more"),
        (("--input_path", "x", "--actors", "two"), "invalid int value"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path, args, message) -> None:
    assert message in fails("wav2vec2_distributed.py", "--batch_size", 1, "--output_path", tmp_path / "out", *args)
    assert not (tmp_path / "out").exists()


def test_auto_takes_what_the_actors_get_not_what_the_driver_has(monkeypatch) -> None:
    """A driver on a GPU or NPU machine: without --gpus_per_actor or --npus_per_actor the actors get a CPU."""
    from wav2vec2_pipeline import backends, distributed
    from wav2vec2_pipeline.device import DeviceOptions
    from wav2vec2_pipeline.distributed import actor_device

    monkeypatch.setattr(backends.CudaBackend, "available", classmethod(lambda cls: True))
    monkeypatch.setattr(backends.AieBackend, "available", classmethod(lambda cls: True))
    monkeypatch.setattr(distributed, "cpu_auto", lambda: "onnxruntime")
    assert actor_device("auto", ClusterOptions())[0] == "onnxruntime"
    assert actor_device("auto", ClusterOptions(gpus_per_actor=1))[0] == "cuda"
    assert actor_device("auto", ClusterOptions(npus_per_actor=1))[0] == "aie"
    compiled_as = DeviceOptions(soc_version="Ascend910B3", precision_policy="FP32", device_id=3)
    _, options = actor_device("aie", ClusterOptions(npus_per_actor=1), compiled_as)
    assert (options.soc_version, options.precision_policy, options.device_id) == ("Ascend910B3", "FP32", 0)
    assert actor_device("onnxruntime", ClusterOptions())[1].threads == 1, "as many as the CPUs it reserves"
    assert actor_device("onnxruntime", ClusterOptions(threads_per_actor=4))[1].threads == 4


def test_the_driver_leaves_the_cpu_check_to_the_actors_and_refuses_bins_that_never_came_back(
    tmp_path, dataset, traced_path, monkeypatch
) -> None:
    """A head node without bf16 can send openvino-bf16 to workers that have it (each actor checks its own CPU as
    it loads); and bins that a runner elsewhere loses are named, never left out of a manifest."""
    from wav2vec2_pipeline import backends
    from wav2vec2_pipeline.inference import CompileOptions, compile_bins, plan_compile, run_compile

    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 4, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx512f"}))  # the driver's CPU: no bf16
    options = CompileOptions(batch_size=4, backend="openvino-bf16")
    with pytest.raises(PipelineError, match=r"^1 bin\(s\) never came back .*: run the same command again"):
        run = plan_compile(tmp_path / "in", tmp_path / "out", traced_path, options)
        compile_bins(run, options, "test", runner=lambda bins: iter(()))
    assert not (tmp_path / "out" / "manifest.json").exists()
    with pytest.raises(PipelineError, match="needs a CPU with avx512_bf16"):  # run here, it is checked here
        run_compile(tmp_path / "in", tmp_path / "out2", traced_path, options, "test")


def test_a_device_no_node_has_is_one_line_not_a_hang(capsys) -> None:
    """Ray waits without end for an actor it cannot place; a cluster may be waiting for its autoscaler."""
    from wav2vec2_pipeline.cluster import check_devices

    with pytest.raises(PipelineError, match=r"^--gpus_per_actor 1: this machine's Ray has 0 GPU\(s\)"):
        check_devices(ClusterOptions(gpus_per_actor=1), {"CPU": 2.0}, local=True)
    with pytest.raises(PipelineError, match=r"^--npus_per_actor 2: this machine's Ray has 1 NPU\(s\)"):
        check_devices(ClusterOptions(npus_per_actor=2), {"CPU": 2.0, "NPU": 1.0}, local=True)
    check_devices(ClusterOptions(npus_per_actor=1), {"CPU": 2.0, "NPU": 8.0}, local=True)
    check_devices(ClusterOptions(gpus_per_actor=0.5), {"CPU": 2.0}, local=False)
    assert capsys.readouterr().err.startswith("warning: --gpus_per_actor 0.5: the Ray cluster (as yet) has 0 GPU(s)")


# Last in this module: it stops the module's local Ray for a cluster of its own, and tests after it would each
# start and stop a Ray of their own.
def test_a_node_removed_mid_run_ends_with_the_bins_of_a_clean_run(tmp_path, dataset, traced_path, local_ray) -> None:
    """Head without CPUs, two worker nodes with one actor each; one node is removed after the first bin comes back
    (and, as an autoscaler would, another joins). The job finishes, or a re-run runs only the missing bins."""
    from ray.cluster_utils import Cluster

    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "static", "--long_audio", "chunk")  # fmt: skip
    run_main("compile.py", "--batch_size", 1, "--input_path", tmp_path / "in", "--output_path", tmp_path / "clean",
             "--torchscript_path", traced_path, "--backend", "torchscript", "--threads", 2, "--warmup_runs", 0,
             "--timed_runs", 1)  # fmt: skip
    ray.shutdown()  # this test brings its own cluster; local_ray's teardown finds nothing to stop
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, runtime_env=ray_init_args(ONE_THREAD)["runtime_env"])
        options = ClusterOptions(actors=2, threads_per_actor=2, bins_per_task=1)  # 2 CPUs each: one actor per node
        removed = []

        def remove_a_node(name: str) -> None:
            if not removed:
                removed.append(name)
                cluster.remove_node(workers[0])
                cluster.add_node(num_cpus=2)

        try:
            first, _ = run_bins(tmp_path / "in", tmp_path / "out", traced_path, 1, "torchscript", options, "test",
                                on_result=remove_a_node)  # fmt: skip
            finished_first = True
        except PipelineError as error:
            assert "run the same command again" in str(error)
            finished_first = False
        assert removed
        done_before = len(list((tmp_path / "out" / ".bins").glob("batch_*.json")))
        if not finished_first:
            _, second = run_bins(tmp_path / "in", tmp_path / "out", traced_path, 1, "torchscript", options, "test")
            assert sum(f.bins for f in second.actors.values()) == 8 - done_before  # only what was missing
        else:
            assert first.stage.bins_run == 8
        assert files(tmp_path / "out") == files(tmp_path / "clean") and len(files(tmp_path / "clean")) == 8
    finally:
        ray.shutdown()
        cluster.shutdown()

"""`make gpu-check` and the device selection behind it.

The course machines have no GPU, so these tests hide the GPU explicitly (CUDA_VISIBLE_DEVICES="")
and check that everything falls back to the CPU and says so; on a machine with a GPU the
unhidden run must list it (compared with what the backend itself reports)."""

import json
import os
import subprocess
import sys
import time

import pytest

from cvcourse.hardware import Measurement, cnn_training_throughput, matmul_tflops
from cvcourse.models import build_course_cnn


def _gpu_check(*args, timeout=120, **environment):
    env = dict(os.environ, **environment)
    return subprocess.run(
        [sys.executable, "-m", "cvcourse.gpu_check", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_make_gpu_check_runs_on_the_cpu_in_under_a_minute_and_says_there_is_no_gpu(repo_root):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    start = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "gpu-check"], cwd=repo_root, capture_output=True, text=True, env=env, timeout=300
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 60, f"make gpu-check took {elapsed:.0f} s on the CPU:\n{result.stdout}"
    out = result.stdout
    assert "training on the CPU (no GPU visible)" in out
    assert "No GPU is visible to the tensorflow backend" in out and "tensorflow[and-cuda]" in out
    table = out[out.index("measurement"):].splitlines()
    assert table[0].split() == ["measurement", "cpu:0"]  # no GPU column, no ratio column
    rows = {line.rsplit("  ", 1)[0].strip(): float(line.rsplit(None, 1)[1].replace(",", "")) for line in table[2:]}
    assert set(rows) == {
        "matmul 4096x4096 float32 (TFLOP/s)",
        "course CNN training, batch 256 (images/s)",
        "course CNN training, batch 1024 (images/s)",
    }
    assert all(rate > 0 for rate in rows.values())


@pytest.mark.parametrize("hidden", [True, False], ids=["gpu hidden", "as found"])
def test_the_measured_devices_are_the_cpu_plus_every_gpu_the_backend_sees(tmp_path, hidden):
    report_file = tmp_path / "report.json"
    environment = {"CUDA_VISIBLE_DEVICES": ""} if hidden else {}
    result = _gpu_check("--batch-sizes", "32", "--matmul-size", "256", "--seconds", "0.2", "--json", str(report_file), **environment)
    assert result.returncode == 0, result.stderr
    report = json.loads(report_file.read_text())
    seen = subprocess.run(
        [sys.executable, "-c", "from cvcourse.devices import gpu_names; print(len(gpu_names()))"],
        capture_output=True, text=True, env=dict(os.environ, **environment), timeout=120,
    )
    gpus = int(seen.stdout)
    if hidden:
        assert gpus == 0
    assert report["devices"] == ["cpu:0"] + [f"gpu:{i}" for i in range(gpus)]
    assert {m["device"] for m in report["measurements"]} == set(report["devices"])
    assert len(report["measurements"]) == 2 * len(report["devices"])  # a matmul and one batch size each
    assert bool(report["gpu_cpu_ratio"]) == (gpus > 0)


def test_gpu_check_is_backend_agnostic_it_runs_on_jax_too(tmp_path):
    report_file = tmp_path / "report.json"
    result = _gpu_check(
        "--batch-sizes", "16", "--matmul-size", "256", "--seconds", "0.2", "--json", str(report_file),
        KERAS_BACKEND="jax", CUDA_VISIBLE_DEVICES="",
    )
    assert result.returncode == 0, result.stderr
    assert "backend jax: training on the CPU (no GPU visible)" in result.stdout
    report = json.loads(report_file.read_text())
    assert report["backend"].startswith("jax ")
    assert [m["unit"] for m in report["measurements"]] == ["TFLOP/s", "images/s"]


@pytest.mark.parametrize("bad", [["--batch-sizes", "0"], ["--seconds", "-1"], ["--matmul-size", "x"]])
def test_bad_arguments_get_a_usage_error(bad):
    result = _gpu_check(*bad, timeout=60)
    assert result.returncode == 2
    assert "usage: python -m cvcourse.gpu_check" in result.stderr


def test_measurements_count_the_work_they_time():
    matmul = matmul_tflops("cpu:0", n=128, min_seconds=0.05, min_repeats=4)
    assert isinstance(matmul, Measurement) and matmul.unit == "TFLOP/s"
    assert matmul.repeats >= 4 and matmul.seconds >= 0.05
    assert matmul.rate == pytest.approx(2 * 128**3 * matmul.repeats / matmul.seconds / 1e12)
    training = cnn_training_throughput("cpu:0", batch_size=8, min_seconds=0.05, min_repeats=3)
    assert training.unit == "images/s" and training.repeats >= 3
    assert training.rate == pytest.approx(8 * training.repeats / training.seconds)


def test_the_course_cnn_has_the_documented_shapes_and_size():
    model = build_course_cnn(5)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes == {
        "conv1": (28, 28, 32), "pool1": (14, 14, 32), "conv2": (14, 14, 64), "pool2": (7, 7, 64),
        "flatten": (3136,), "features": (128,), "dropout": (128,), "classifier": (5,),
    }
    assert model.count_params() == (5 * 5 * 1 + 1) * 32 + (3 * 3 * 32 + 1) * 64 + (3136 + 1) * 128 + (128 + 1) * 5
    with pytest.raises(ValueError, match="num_classes"):
        build_course_cnn(1)

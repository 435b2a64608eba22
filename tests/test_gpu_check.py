"""`make gpu-check` and the device selection behind it.

The course machines have no GPU, so these tests hide the GPU explicitly (CUDA_VISIBLE_DEVICES="")
and check that everything falls back to the CPU and says so; the GPU branch (table, ratio) runs
everywhere with two faked GPUs; on a machine with a GPU the unhidden run must list every GPU
the driver lists."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import subprocess_env

from cvcourse.hardware import Measurement, cnn_training_throughput, matmul_tflops
from cvcourse.models import build_course_cnn


def _gpu_check(*args, timeout=600, **environment):
    """Run the module itself (never ``make gpu-check``, which may reinstall the environment) with
    the run's starting environment: the default backend unless the test names one."""
    env = subprocess_env(unset=("KERAS_BACKEND",), **environment)
    return subprocess.run(
        [sys.executable, "-m", "cvcourse.gpu_check", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _table(out: str) -> list[list[str]]:
    """The printed table as cells (the header, then one list per measurement; the rule dropped)."""
    lines = out[out.index("measurement"):].splitlines()
    return [re.split(r"\s{2,}", line.strip()) for line in lines[:1] + lines[2:] if line.strip()]


def test_make_gpu_check_runs_the_module(repo_root):
    """``make -n`` shows what the target would run, without running (or reinstalling) anything."""
    result = subprocess.run(["make", "-n", "--no-print-directory", "gpu-check"], cwd=repo_root,
                            capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    command = result.stdout.strip().splitlines()[-1]
    assert command.endswith(".venv/bin/python -m cvcourse.gpu_check")
    assert command.startswith("env -u MPLBACKEND")


def test_gpu_check_on_the_cpu_says_there_is_no_gpu_and_measures_the_cpu_alone(tmp_path):
    report_file = tmp_path / "report.json"
    result = _gpu_check("--batch-sizes", "16", "32", "--matmul-size", "256", "--seconds", "0.2",
                        "--json", str(report_file), CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "training on the CPU (no GPU visible)" in out
    assert "No GPU is visible to the tensorflow backend" in out and "tensorflow[and-cuda]" in out
    table = _table(out)
    assert table[0] == ["measurement", "cpu:0"]  # no GPU column, no ratio column
    rows = {row[0]: float(row[1].replace(",", "")) for row in table[1:]}
    assert set(rows) == {
        "matmul 256x256 float32 (TFLOP/s)",
        "course CNN training, batch 16 (images/s)",
        "course CNN training, batch 32 (images/s)",
    }
    assert all(rate > 0 for rate in rows.values())
    report = json.loads(report_file.read_text())
    assert report["devices"] == ["cpu:0"] and report["gpu_cpu_ratio"] == {}
    assert len(report["measurements"]) == 3 and {m["device"] for m in report["measurements"]} == {"cpu:0"}


def test_with_two_gpus_every_device_is_measured_and_the_ratio_is_gpu_over_cpu(monkeypatch, capsys):
    """The GPU branch, on any machine: two GPUs are faked where the device list comes from
    (``gpu_names``), and the measurements return known rates, so the table and the ratio can be
    checked exactly."""
    from cvcourse import devices, gpu_check, hardware

    fake_gpus = lambda: ["/physical_device:GPU:0", "/physical_device:GPU:1"]  # noqa: E731
    monkeypatch.setattr(hardware, "gpu_names", fake_gpus)
    monkeypatch.setattr(devices, "gpu_names", fake_gpus)
    speed = {"cpu:0": 1.0, "gpu:0": 40.0, "gpu:1": 25.0}

    def fake_matmul(device, *, n, min_seconds):
        return Measurement(device, f"matmul {n}x{n} float32", 0.5 * speed[device], "TFLOP/s", 1.0, 3)

    def fake_training(device, *, batch_size, min_seconds):
        return Measurement(device, f"course CNN training, batch {batch_size}", 800.0 * speed[device], "images/s", 1.0, 3)

    monkeypatch.setattr(gpu_check, "matmul_tflops", fake_matmul)
    monkeypatch.setattr(gpu_check, "cnn_training_throughput", fake_training)
    report = gpu_check.run(batch_sizes=(64,), matmul_size=512, seconds=0.1)
    out = capsys.readouterr().out
    assert "training on the GPU (/physical_device:GPU:0, /physical_device:GPU:1)" in out
    assert "No GPU is visible" not in out
    assert report["devices"] == ["cpu:0", "gpu:0", "gpu:1"]
    assert [m["device"] for m in report["measurements"]] == ["cpu:0", "cpu:0", "gpu:0", "gpu:0", "gpu:1", "gpu:1"]
    assert report["gpu_cpu_ratio"] == {"matmul 512x512 float32 (TFLOP/s)": 40.0,
                                       "course CNN training, batch 64 (images/s)": 40.0}
    assert _table(out) == [
        ["measurement", "cpu:0", "gpu:0", "gpu:1", "GPU/CPU"],
        ["matmul 512x512 float32 (TFLOP/s)", "0.5", "20", "12.5", "40.0x"],
        ["course CNN training, batch 64 (images/s)", "800", "32,000", "20,000", "40.0x"],
    ]


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA driver on this machine")
def test_on_a_gpu_machine_every_gpu_the_driver_lists_is_measured(tmp_path):
    """Compared with the driver's own list (nvidia-smi -L), not with the course's code."""
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    gpus = sum(line.startswith("GPU ") for line in listed.stdout.splitlines())
    report_file = tmp_path / "report.json"
    result = _gpu_check("--batch-sizes", "32", "--matmul-size", "256", "--seconds", "0.2", "--json", str(report_file))
    assert result.returncode == 0, result.stderr
    report = json.loads(report_file.read_text())
    assert report["devices"] == ["cpu:0"] + [f"gpu:{i}" for i in range(gpus)]
    assert len(report["gpu_cpu_ratio"]) == (2 if gpus else 0)


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

"""Measure what a machine's devices do for the course: matrix products and CNN training speed.

Used by ``make gpu-check`` (:mod:`cvcourse.gpu_check`) and by the hardware chapter. Everything here
is backend-agnostic Keras 3 (``keras.ops``, ``keras.device``), so it measures whichever backend
``KERAS_BACKEND`` selects: TensorFlow by default, or JAX / PyTorch where TensorFlow's GPU build is
not installed.

Timing rules, so that numbers are honest on asynchronous GPUs:

* every measurement starts with untimed warm-up calls (graph tracing, XLA / cuDNN autotuning);
* the clock stops only after a result has been copied back to the host, which waits for the
  device to finish;
* a measurement repeats until it has run for ``min_seconds`` (and at least ``min_repeats`` times),
  so fast devices are timed over many calls and slow ones are not kept waiting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cvcourse.devices import backend_name, gpu_names, quiet_native_stderr
from cvcourse.models import COURSE_CNN_INPUT_SHAPE, build_course_cnn

import keras

__all__ = ["Measurement", "available_devices", "matmul_tflops", "cnn_training_throughput"]


@dataclass(frozen=True)
class Measurement:
    """One timed measurement.

    ``rate`` is in the unit named by ``unit`` ("TFLOP/s" or "images/s"); ``seconds`` is the timed
    wall-clock time over ``repeats`` calls (warm-up excluded).
    """

    device: str
    what: str
    rate: float
    unit: str
    seconds: float
    repeats: int


def available_devices() -> list[str]:
    """Keras device names to measure: ``"cpu:0"`` always, then ``"gpu:0"``, ``"gpu:1"``... for each
    GPU the current backend can use."""
    return ["cpu:0"] + [f"gpu:{index}" for index in range(len(gpu_names()))]


def _timed(run_once, *, warmup: int, min_seconds: float, min_repeats: int) -> tuple[float, int]:
    """Call ``run_once`` (which must block until its work is done) ``warmup`` times untimed, then
    until ``min_seconds`` have passed; return (seconds, repeats) of the timed part."""
    for _ in range(warmup):
        run_once()
    repeats, start = 0, time.perf_counter()
    while True:
        run_once()
        repeats += 1
        elapsed = time.perf_counter() - start
        if repeats >= min_repeats and elapsed >= min_seconds:
            return elapsed, repeats


def matmul_tflops(device: str = "cpu:0", *, n: int = 4096, min_seconds: float = 0.5, min_repeats: int = 2) -> Measurement:
    """Speed of an (n, n) @ (n, n) float32 matrix product on ``device``, in TFLOP/s.

    One product costs 2 n^3 floating-point operations. On a GPU each timed call chains 16
    products, so that copying a scalar back to the host (which makes the call wait for the device)
    is a small part of it; on the CPU one product is already long. NVIDIA GPUs from Ampere on run
    float32 products on TF32 tensor cores by default in all three backends: the number is what a
    model trained in float32 gets there.
    """
    chain = 1 if device.startswith("cpu") else 16
    with keras.device(device):
        a = keras.random.normal((n, n), seed=1, dtype="float32")
        b = keras.random.normal((n, n), seed=2, dtype="float32") / np.sqrt(n)

        def run_once():
            c = a
            for _ in range(chain):
                c = keras.ops.matmul(c, b)
            return float(keras.ops.convert_to_numpy(c[0, 0]))

        seconds, repeats = _timed(run_once, warmup=1, min_seconds=min_seconds, min_repeats=min_repeats)
    flops = chain * 2.0 * n**3 * repeats
    return Measurement(device, f"matmul {n}x{n} float32", flops / seconds / 1e12, "TFLOP/s", seconds, repeats)


def cnn_training_throughput(
    device: str = "cpu:0", *, batch_size: int = 256, min_seconds: float = 2.0, min_repeats: int = 3, seed: int = 0
) -> Measurement:
    """Training speed of the course CNN (10 classes) on ``device``, in images per second.

    Each timed call is one optimisation step (forward, backward, Adam update) on a batch of
    ``batch_size`` random 28x28 images that already sit on the device, so the number is the
    device's compute speed; reading and copying data is the subject of the hardware chapter.
    """
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, *COURSE_CNN_INPUT_SHAPE), dtype=np.float32)
    labels = rng.integers(0, 10, size=batch_size)
    with keras.device(device):
        keras.utils.set_random_seed(seed)
        model = build_course_cnn(10)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        x = keras.ops.convert_to_tensor(images)
        y = keras.ops.convert_to_tensor(labels)

        def run_once():
            # train_on_batch returns the loss as a host number, so each call waits for the device.
            return model.train_on_batch(x, y)

        with quiet_native_stderr():  # first call: XLA / cuDNN autotuning notices
            seconds, repeats = _timed(run_once, warmup=2, min_seconds=min_seconds, min_repeats=min_repeats)
    return Measurement(
        device, f"course CNN training, batch {batch_size}", batch_size * repeats / seconds, "images/s", seconds, repeats
    )


def describe_backend() -> str:
    """The backend and its version, e.g. ``"tensorflow 2.21.0"``."""
    backend = backend_name()  # also the name of the backend's Python module
    return f"{backend} {getattr(__import__(backend), '__version__', '')}".strip()

"""``make gpu-check``: which devices will train the course's models, and how fast.

    python -m cvcourse.gpu_check [--batch-sizes 256 1024] [--matmul-size 4096] [--seconds 2] [--json FILE]
    KERAS_BACKEND=jax python -m cvcourse.gpu_check      # the same on another Keras backend

Prints the Keras backend, the devices it can use, and per device: the speed of a large float32
matrix product (TFLOP/s) and the course CNN's training throughput (images/s) at each batch size,
with the GPU/CPU ratio. Without a GPU it says so and measures the CPU alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

from cvcourse.devices import backend_name, describe_devices
from cvcourse.hardware import available_devices, cnn_training_throughput, describe_backend, matmul_tflops

NO_GPU_HELP = (
    "No GPU is visible to the {backend} backend, so everything below runs on the CPU.\n"
    "  To train on an NVIDIA GPU, install a GPU build of the backend, for example\n"
    "    .venv/bin/pip install 'tensorflow[and-cuda]==2.21.0'     (TensorFlow's GPU build, Linux)\n"
    "  or install JAX with CUDA (pip install 'jax[cuda12]') and run with KERAS_BACKEND=jax.\n"
    "  Check the driver with nvidia-smi; CUDA_VISIBLE_DEVICES='' hides every GPU on purpose."
)


def _format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run(batch_sizes=(256, 1024), matmul_size: int = 4096, seconds: float = 2.0) -> dict:
    """Measure every available device; return a JSON-ready report and print it as a table."""
    devices = available_devices()
    print(describe_devices())
    print(f"Backend: {describe_backend()}; CPU cores: {os.cpu_count()}; devices measured: {', '.join(devices)}")
    if len(devices) == 1:
        print(NO_GPU_HELP.format(backend=backend_name()))
    sys.stdout.flush()

    measurements = []
    for device in devices:
        measurements.append(matmul_tflops(device, n=matmul_size, min_seconds=seconds / 4))
        for batch_size in batch_sizes:
            measurements.append(cnn_training_throughput(device, batch_size=batch_size, min_seconds=seconds))

    by_what: dict[str, dict] = {}
    for m in measurements:
        by_what.setdefault(f"{m.what} ({m.unit})", {})[m.device] = m.rate
    header = ["measurement", *devices] + (["GPU/CPU"] if len(devices) > 1 else [])
    rows = [header]
    ratios = {}
    for what, rates in by_what.items():
        row = [what] + [f"{rates[d]:,.3g}" if rates[d] < 100 else f"{rates[d]:,.0f}" for d in devices]
        if len(devices) > 1:
            ratios[what] = rates[devices[1]] / rates["cpu:0"]
            row.append(f"{ratios[what]:.1f}x")
        rows.append(row)
    print()
    print(_format_table(rows))
    return {
        "backend": describe_backend(),
        "devices": devices,
        "cpu_cores": os.cpu_count(),
        "measurements": [asdict(m) for m in measurements],
        "gpu_cpu_ratio": ratios,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvcourse.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024], metavar="N")
    parser.add_argument("--matmul-size", type=int, default=4096, metavar="N")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per CNN measurement")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.batch_sizes) or args.matmul_size < 1 or args.seconds <= 0:
        parser.error("batch sizes and the matrix size must be positive, and --seconds above 0")
    report = run(args.batch_sizes, args.matmul_size, args.seconds)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

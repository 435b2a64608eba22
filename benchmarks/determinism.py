"""What deterministic training costs, and whether it repeats: the course CNN trained twice with
and twice without ``set_seed(..., deterministic=True)``, each run in a fresh process.

    python benchmarks/determinism.py [--images 6000] [--epochs 2]

Prints each run's training seconds and a checksum of the trained weights: the deterministic runs
must agree bit for bit; the others may or may not (on the CPU they often do).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

RUN = r"""
import hashlib, json, sys, time
from cvcourse.devices import set_seed
import keras, numpy as np
from cvcourse.data import load_fashion_mnist
from cvcourse.models import build_course_cnn

images, epochs, deterministic = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
(x, y), _ = load_fashion_mnist()
x, y = x[:images, ..., None].astype("float32") / 255, y[:images]
set_seed(0, deterministic=deterministic)
model = build_course_cnn(10)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
start = time.perf_counter()
model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
seconds = time.perf_counter() - start
digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()[:16]
print(json.dumps({"seconds": seconds, "weights": digest}))
"""


def run(images: int, epochs: int, deterministic: bool) -> dict:
    result = subprocess.run([sys.executable, "-c", RUN, str(images), str(epochs), str(int(deterministic))],
                            capture_output=True, text=True, check=True, env=dict(os.environ))
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    # Alternate the two settings, so that a change in the machine's load hits both alike.
    results = {True: [], False: []}
    for _ in range(args.repeats):
        for deterministic in (True, False):
            results[deterministic].append(run(args.images, args.epochs, deterministic))
    for deterministic, runs in results.items():
        times = ", ".join(f"{r['seconds']:.1f} s" for r in runs)
        digests = {r["weights"] for r in runs}
        print(f"deterministic={deterministic!s:5}  training {times}  "
              f"weights {'identical' if len(digests) == 1 else 'DIFFER'}: {', '.join(sorted(digests))}")
    ratio = sum(r["seconds"] for r in results[True]) / sum(r["seconds"] for r in results[False])
    print(f"deterministic / default time: {ratio:.2f}; load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

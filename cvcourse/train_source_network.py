"""Retrain the course's source network from scratch and write its weights and record.

    python -m cvcourse.train_source_network                 # into a new folder: source_network/
    python -m cvcourse.train_source_network --out DIR
    python -m cvcourse.train_source_network --out cvcourse/weights   # replace the shipped one

Writes ``DIR/source_cnn.weights.h5`` and ``DIR/source_cnn.json`` (SHA-256 of the weights, the
training settings and time, the accuracy on the 5 000 held-out test images of classes 0-4, and
the library versions), then prints the record. Training is seeded and, on TensorFlow, uses
deterministic kernels, so a retrained network matches the shipped one's held-out accuracy to
within a fraction of a point (the test suite checks 1 point); bit-identical weights are only
expected on the same machine and library versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from cvcourse.devices import backend_name, describe_devices, use_deterministic_kernels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cvcourse.train_source_network", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("source_network"), help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)

    import keras
    import numpy

    from cvcourse.models import build_course_cnn
    from cvcourse.source_network import (
        RECORD_PATH,
        SOURCE_CLASSES,
        TRAINING_SETTINGS,
        WEIGHTS_PATH,
        heldout_accuracy,
        sha256_of,
        train_source_network,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / WEIGHTS_PATH.name
    print(describe_devices(), flush=True)
    use_deterministic_kernels()
    model, seconds = train_source_network(verbose=0)
    # Save from an uncompiled copy: a compiled model's weights file also holds the optimizer's
    # moment estimates, three times the size and of no use to anyone loading the network.
    bare = build_course_cnn(len(SOURCE_CLASSES), name=model.name)
    bare.set_weights(model.get_weights())
    bare.save_weights(weights)
    record = {
        "sha256": sha256_of(weights),
        "bytes": weights.stat().st_size,
        "classes": list(SOURCE_CLASSES),
        "training_images": 30000,
        "heldout_images": 5000,
        "heldout_accuracy": round(heldout_accuracy(model), 4),
        "training_settings": TRAINING_SETTINGS,
        "training_seconds": round(seconds, 1),
        "parameters": model.count_params(),
        "trained_with": {
            "keras": keras.__version__,
            "backend": backend_name(),
            "numpy": numpy.__version__,
            "python": platform.python_version(),
            "device": describe_devices().split(": ", 1)[1],
        },
    }
    if backend_name() == "tensorflow":
        import tensorflow as tf

        record["trained_with"]["tensorflow"] = tf.__version__
    (args.out / RECORD_PATH.name).write_text(json.dumps(record, indent=2) + "\n")
    json.dump(record, sys.stdout, indent=2)
    print(f"\nwrote {weights} and {args.out / RECORD_PATH.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

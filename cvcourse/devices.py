"""Keras set-up shared by every chapter and homework that trains a model.

Import this module *before* ``keras``::

    from cvcourse.devices import describe_devices, set_seed
    import keras

Importing it

* selects TensorFlow as the Keras backend unless ``KERAS_BACKEND`` is already set (so the
  same code runs on JAX or PyTorch when asked);
* imports Keras and its backend with the native libraries' start-up log (CUDA probing,
  CPU-feature notices, written straight to file descriptor 2 by C++ code) sent to
  ``/dev/null``: it is noise in a rendered page, and :func:`describe_devices` states the
  facts it would have told. Python warnings and errors are not affected.

Keras places work on the first GPU by itself when one is visible, and on the CPU otherwise;
nothing in the course's code names a device. :func:`describe_devices` says which was used.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["backend_name", "gpu_names", "describe_devices", "set_seed", "use_deterministic_kernels",
           "quiet_native_stderr"]

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Deterministic GPU kernels for JAX and PyTorch (see set_seed): both read these only when they
# start, so they are set here, before Keras imports its backend. Neither affects the CPU.
if "--xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # Jupyter's streams have no file descriptor
        return False


@contextlib.contextmanager
def quiet_native_stderr():
    """Send what native code writes to file descriptor 2 to /dev/null for the block's duration.

    Python's own standard error is not silenced: while fd 2 points at /dev/null, ``sys.stderr``
    (where warnings, tracebacks and ``print(..., file=sys.stderr)`` go) is a stream on a copy of
    the real fd 2. In Jupyter, where ``sys.stderr`` does not write to fd 2, it is left alone.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (some embedded interpreters): nothing to silence
        yield
        return
    python_stderr, rerouted = sys.stderr, None
    try:
        if _writes_to_fd2(python_stderr):
            rerouted = open(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding,
                            errors="backslashreplace")
            sys.stderr = rerouted
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        if rerouted is not None:
            rerouted.flush()
            if sys.stderr is rerouted:
                sys.stderr = python_stderr
            rerouted.close()
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


with quiet_native_stderr():
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as _tf

        # Device enumeration initialises CUDA, which logs its failure on machines without one.
        _tf.config.list_physical_devices()


def backend_name() -> str:
    """The Keras backend in use: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def gpu_names() -> list[str]:
    """Names of the GPUs the current Keras backend can use (empty when there is none)."""
    backend = backend_name()
    with quiet_native_stderr():
        if backend == "tensorflow":
            import tensorflow as tf

            return [device.name for device in tf.config.list_physical_devices("GPU")]
        if backend == "jax":
            import jax

            return [str(device) for device in jax.devices() if device.platform == "gpu"]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def describe_devices() -> str:
    """One line saying which backend and device train the models, e.g.
    ``"Keras 3.15.1, backend tensorflow: training on the CPU (no GPU visible)"``."""
    gpus = gpu_names()
    where = f"training on the GPU ({', '.join(gpus)})" if gpus else "training on the CPU (no GPU visible)"
    return f"Keras {keras.__version__}, backend {backend_name()}: {where}"


def set_seed(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the Keras backend, so that runs repeat exactly on a given machine.

    With ``deterministic`` (the default) the backend is also told to use deterministic kernels,
    so the same seed gives the same weights bit for bit, run after run: TensorFlow's
    ``enable_op_determinism`` (it also serialises the few CPU ops whose threads would otherwise
    add floating-point numbers in a varying order); PyTorch's ``use_deterministic_algorithms``;
    JAX on the CPU is deterministic already (its GPU flag must be set before JAX starts, see
    the module's import). Other machines, thread counts or library versions may still give
    other numbers, which is why the book glues its numbers from the run itself.
    """
    # keras seeds TensorFlow too whenever it is installed, even on another backend: the first
    # TensorFlow import then writes its native start-up log, which stays off the page.
    with quiet_native_stderr():
        keras.utils.set_random_seed(seed)
    if deterministic:
        use_deterministic_kernels()


def use_deterministic_kernels() -> None:
    """Ask the Keras backend for deterministic kernels (see :func:`set_seed`); for good, in this
    process."""
    with quiet_native_stderr():
        backend = backend_name()
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        elif backend == "torch":
            import torch

            torch.use_deterministic_algorithms(True, warn_only=True)

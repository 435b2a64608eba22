"""Keras set-up: the device report, seeding, and silencing of native start-up logs only."""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import subprocess_env


def _run(code: str, **environment) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter. KERAS_BACKEND and TF_CPP_MIN_LOG_LEVEL are cleared
    unless given, so the defaults are what is tested even where a user exports their own."""
    env = subprocess_env(unset=("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL"), **environment)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_importing_keras_through_the_course_is_silent_and_reports_the_cpu_when_no_gpu_is_visible():
    result = _run(
        "from cvcourse.devices import describe_devices\nprint(describe_devices())",
        CUDA_VISIBLE_DEVICES="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("training on the CPU (no GPU visible)")
    assert "backend tensorflow" in result.stdout
    assert result.stderr == ""


def test_a_backend_chosen_by_the_user_is_kept_and_reports_its_device_silently():
    """KERAS_BACKEND=jax (installed with the course, CPU build) is honoured, not replaced by
    TensorFlow, says where it trains, and seeds without TensorFlow's start-up log on stderr
    (Keras seeds TensorFlow too when it is installed)."""
    result = _run(
        "import cvcourse.devices as d; print(d.backend_name()); print(d.describe_devices()); d.set_seed(0)",
        KERAS_BACKEND="jax", CUDA_VISIBLE_DEVICES="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["jax", "Keras 3.15.1, backend jax: training on the CPU (no GPU visible)"]
    assert result.stderr == ""


def test_an_unknown_backend_fails_by_naming_it():
    result = _run("import cvcourse.devices", KERAS_BACKEND="nonsense")
    assert result.returncode != 0 and "nonsense" in result.stderr


def test_quiet_native_stderr_silences_file_descriptor_2_only_inside_the_block():
    code = (
        "import os, sys\n"
        "from cvcourse.devices import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'native noise\\n')\n"
        "os.write(2, b'after the block\\n')\n"
        "import warnings; warnings.warn('python warning kept')\n"
    )
    result = _run(code)
    assert result.returncode == 0
    assert "native noise" not in result.stderr
    assert "after the block" in result.stderr and "python warning kept" in result.stderr


def test_quiet_native_stderr_keeps_python_warnings_and_errors_inside_the_block_visible():
    code = (
        "import os, sys, warnings\n"
        "from cvcourse.devices import quiet_native_stderr\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'native noise\\n')\n"
        "    warnings.warn('warning inside the block')\n"
        "    print('python error text inside', file=sys.stderr)\n"
        "    with quiet_native_stderr():\n"
        "        os.write(2, b'nested native noise\\n')\n"
        "        warnings.warn('nested warning')\n"
        "    os.write(2, b'still native noise\\n')\n"
        "os.write(2, b'after the block\\n')\n"
        "print('python after', file=sys.stderr)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    for silenced in ("native noise", "nested native noise", "still native noise"):
        assert silenced not in result.stderr
    for kept in ("warning inside the block", "python error text inside", "nested warning",
                 "after the block", "python after"):
        assert kept in result.stderr


def test_set_seed_makes_weight_initialisation_repeatable():
    from cvcourse.devices import set_seed
    import keras

    def first_layer_weights():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        return model.layers[0].get_weights()[0]

    set_seed(7)
    a = first_layer_weights()
    set_seed(7)
    b = first_layer_weights()
    set_seed(8)
    c = first_layer_weights()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_children_get_the_starting_environment_not_what_importing_cvcourse_devices_set():
    """Importing cvcourse.devices (as the tests do) sets KERAS_BACKEND, TF_CPP_MIN_LOG_LEVEL...
    in os.environ; a child built with subprocess_env must not inherit them, or a chapter that
    prints native logs would pass a check of its stderr."""
    import cvcourse.devices  # noqa: F401
    from conftest import STARTING_ENVIRONMENT

    set_by_the_import = {"KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "CUBLAS_WORKSPACE_CONFIG"} - set(STARTING_ENVIRONMENT)
    assert all(name in os.environ for name in set_by_the_import)
    child = subprocess.run([sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
                           capture_output=True, text=True, env=subprocess_env(), timeout=60)
    seen = json.loads(child.stdout)
    assert set_by_the_import.isdisjoint(seen)
    assert seen.get("XLA_FLAGS") == STARTING_ENVIRONMENT.get("XLA_FLAGS")

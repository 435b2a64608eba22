"""The source rules (autograder.analysis): each way around the loop rule and the by-hand rule
is caught, what cannot be followed fails closed, and ordinary NumPy code passes."""

from __future__ import annotations

import pytest

from autograder.analysis import SubmissionAnalysis

SETUP = ["import numpy as np\nimport scipy\nfrom scipy import signal as setup_signal\n"
         "def rel_error(a, b):\n    return 0.0\n"]
HIDDEN = "_rng = np.random.default_rng(0)\n_x = _rng.random((3, 3))\n_record('k', conv(_x, rel_error(_x, _x)))\n"
NO_LOOPS = ("for", "while", "comprehension")
BY_HAND = ("tensorflow", "keras", "jax", "torch", "autograd", "scipy.signal", "scipy.ndimage")


def verdict(*cells: str, syntax=NO_LOOPS, modules=BY_HAND) -> str | None:
    analysis = SubmissionAnalysis(list(cells), SETUP)
    return analysis.check(analysis.closure(analysis.roots(HIDDEN)), syntax, modules)


LOOPING = "def conv_naive(x, w):\n    total = 0\n    for row in x:\n        total += row.sum()\n    return total\n"
CLEAN = "def conv(x, w):\n    return np.einsum('ij,jk->ik', x, x) * w\n"


def test_ordinary_numpy_code_passes():
    helpers = ("import numpy as np\nEPS = 1e-12\nSHAPES = {'a': (3, 3)}\n\n"
               "def _pad(x, pad=0):\n    return np.pad(x, pad)\n\n"
               "class Layer:\n    scale = 2.0\n    def __init__(self, w):\n        self.w = w\n"
               "    def __call__(self, x):\n        return x * self.w * self.scale\n")
    code = ("def conv(x, w):\n    \"\"\"Docstring.\"\"\"\n    out = _pad(x) + EPS\n    layer = Layer(w)\n"
            "    inner = lambda v: v.T\n    return inner(layer(out)) if getattr(out, 'ndim') else out\n")
    experiment = "scores = [conv(np.ones((2, 2)), k) for k in range(3)]\nprint(scores)\n"
    assert verdict(LOOPING, helpers, code, experiment) is None
    assert verdict(helpers, code, "import numpy as np\n") is None  # numpy imported again: the same module


@pytest.mark.parametrize("cells,expected", [
    ((LOOPING, "def conv(x, w):\n    return globals()['conv_naive'](x, w)\n"), "uses globals"),
    ((LOOPING, "def conv(x, w, _impl=conv_naive):\n    return _impl(x, w)\n"), "conv_naive uses a for loop"),
    ((LOOPING, CLEAN + "conv = conv_naive\n"), "conv is defined 2 times"),
    ((LOOPING, "if False:\n" + "".join("    " + line + "\n" for line in CLEAN.splitlines())
      + LOOPING.replace("conv_naive", "conv")), "inside a block"),
    ((CLEAN, LOOPING.replace("conv_naive", "conv")), "conv is defined 2 times"),
    ((CLEAN, "_ = %pwd\n" + LOOPING.replace("conv_naive", "conv")), "conv is defined 2 times"),
    (("def conv(x, w):\n    return sum([v for v in x])\n",), "uses a comprehension"),
    (("def conv(x, w):\n    while True:\n        return x\n",), "uses a while loop"),
    (("HELPERS = [conv_naive]\n", LOOPING, "def conv(x, w):\n    return HELPERS[0](x, w)\n"), "for loop"),
    (("def conv(x, w):\n    return conv_naive.__code__\n", LOOPING), "attribute .__code__"),
    (("def conv(x, w):\n    global conv_naive\n    return x\n",), "global statement"),
    (("def conv(x, w):\n    return eval('x')\n",), "uses eval"),
    (("def conv(x, w):\n    name = 'conv_naive'\n    return getattr(np, name)\n",), "computed name"),
    (("def conv(x, w):\n    import sys\n    return sys.modules\n",), "module sys"),
    (("def conv(x, w):\n    import os\n    return os.sys.modules['__main__'].conv_naive(x, w)\n",), "module os"),
    (("from numpy import *\n", CLEAN), "imports *"),
    (("def conv(x, w):\n  return x\n", "def broken(:\n"), "not valid Python"),
])
def test_each_way_around_the_loop_rule_fails(cells, expected):
    problem = verdict(*cells)
    assert problem is not None and expected in problem, problem


@pytest.mark.parametrize("cells,expected", [
    (("def conv(x, w):\n    import tensorflow as tf\n    return tf.nn.conv2d(x, w, 1, 'SAME')\n",), "uses tensorflow"),
    (("import tensorflow as tf\n", "def conv(x, w):\n    return tf.GradientTape\n"), "imported as tf"),
    (("from tensorflow import GradientTape\n", "def conv(x, w):\n    return GradientTape()\n"), "uses tensorflow"),
    (("import tensorflow as tf\nTAPE = tf.GradientTape\n", "def conv(x, w):\n    return TAPE()\n"), "uses tensorflow"),
    (("import keras.ops as K\n", "def conv(x, w):\n    return K.conv(x, w)\n"), "uses keras"),
    (("def conv(x, w):\n    return scipy.signal.convolve2d(x, w)\n",), "uses scipy.signal"),
    (("def conv(x, w):\n    return setup_signal.convolve2d(x, w)\n",), "uses scipy.signal"),
    (("def conv(x, w):\n    from scipy import ndimage\n    return ndimage.convolve(x, w)\n",), "uses scipy.ndimage"),
    (("def conv(x, w):\n    import scipy as sp\n    return sp.ndimage.convolve(x, w)\n",), "uses scipy.ndimage"),
    (("def conv(x, w):\n    return __import__('torch').conv2d(x, w)\n",), "uses __import__"),
    (("def conv(x, w):\n    import importlib\n    return importlib.import_module('jax')\n",), "module importlib"),
    (("def conv(x, w):\n    return exec('import jax')\n",), "uses exec"),
    (("def conv(x, w):\n    return compile('1', 'a', 'eval')\n",), "uses compile"),
    (("def conv(x, w):\n    return getattr(__builtins__, 'eval')('1')\n",), "uses __builtins__"),
])
def test_each_way_to_reach_a_forbidden_module_fails(cells, expected):
    problem = verdict(*cells, syntax=())
    assert problem is not None and expected in problem, problem


def test_a_name_the_hidden_test_does_not_use_is_not_judged():
    # A looping helper nobody calls, and top-level experiments, cost nothing.
    assert verdict(LOOPING, CLEAN, "for k in range(3):\n    print(conv_naive(np.ones(2), k))\n") is None


def test_the_closure_holds_exactly_what_the_hidden_test_relies_on():
    analysis = SubmissionAnalysis(["import numpy as np\nEPS = 1e-9\nUNUSED = 3\n",
                                   "def helper(x):\n    return x + EPS\n",
                                   "def conv(x, w):\n    return helper(x)\n"], SETUP)
    closure = analysis.closure(analysis.roots(HIDDEN))
    assert [b.name for b in closure.bindings] == ["np", "EPS", "helper", "conv"]
    assert closure.code() == ["import numpy as np", "EPS = 1e-09", "def helper(x):\n    return x + EPS",
                              "def conv(x, w):\n    return helper(x)"]

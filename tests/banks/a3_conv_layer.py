"""Homework 3 (a convolution layer, forward and backward, and max pooling): submissions with the
exact score each must get.

Points: test_zero_pad 5, test_conv_output_sizes 10, test_conv_forward_naive 15,
test_conv_backward_naive 20, test_conv_forward_fast 15, test_conv_backward_fast 10,
test_max_pool_forward 10, test_max_pool_backward 15. Every hidden part calls only the functions
its test grades, and the backward tests build the cache ``(x, w, b, stride, pad)`` themselves, so
a mistake costs the points of the function that makes it and of no other. Every test forbids
TensorFlow, Keras, JAX, PyTorch, scipy.signal and scipy.ndimage; test_conv_forward_fast also
forbids loops and comprehensions.
"""

from __future__ import annotations

from .common import Case, Homework, Probe, blank_answers, notebook_case, replace, solution_answers, with_cells

HOMEWORK = Homework("a3_conv_layer", "conv_layer.ipynb")


def correct() -> dict[str, str]:
    return solution_answers(HOMEWORK)


def partial_naive_forward_and_pooling_forward() -> dict[str, str]:
    """zero_pad, conv_forward_naive and max_pool_forward done, the rest left blank."""
    right = solution_answers(HOMEWORK)
    return with_cells(blank_answers(HOMEWORK), **{name: right[name] for name in
                                                  ("zero_pad", "conv_forward_naive", "max_pool_forward")})


# --- the mistakes, each an edit of the solution ------------------------------------------

def mistake_kernel_flipped() -> dict[str, str]:
    """A true convolution (the filter flipped) instead of Keras's cross-correlation."""
    return replace(correct(), "conv_forward_naive", "np.sum(window * w[:, :, :, f])",
                   "np.sum(window * w[::-1, ::-1, :, f])")


def mistake_off_by_one_output_size() -> dict[str, str]:
    """H' = (H + 2P - F) / S without the + 1: one row and one column short."""
    return replace(correct(), "conv_forward_naive", "H_out, W_out = span_h // stride + 1, span_w // stride + 1",
                   "H_out, W_out = span_h // stride, span_w // stride")


def mistake_does_not_fit_floored() -> dict[str, str]:
    """Only negative sizes are refused; a stride that does not fit is silently rounded down."""
    return replace(correct(), "conv_forward_naive",
                   "if min(span_h, span_w) < 0 or span_h % stride or span_w % stride:",
                   "if min(span_h, span_w) < 0:")


def mistake_channels_mixed_up() -> dict[str, str]:
    """The kernel read as (F_h, F_w, C_out, C_in): w indexed [c_out, c_in]."""
    return replace(correct(), "conv_forward_fast", "np.tensordot(windows, w, axes=",
                   "np.tensordot(windows, w.transpose(0, 1, 3, 2), axes=")


def mistake_fast_non_square_kernel() -> dict[str, str]:
    """A fast version that agrees with the naive one on square kernels only (window (F_w, F_h))."""
    return replace(correct(), "conv_forward_fast", "zero_pad(x, pad), (F_h, F_w), axis=(1, 2)",
                   "zero_pad(x, pad), (F_w, F_h), axis=(1, 2)")


def mistake_stride_ignored_in_backward() -> dict[str, str]:
    return replace(replace(correct(), "conv_backward_naive", "rows = slice(i * stride, i * stride + F_h)",
                           "rows = slice(i, i + F_h)"),
                   "conv_backward_naive", "cols = slice(j * stride, j * stride + F_w)", "cols = slice(j, j + F_w)")


def mistake_padding_not_removed_from_dx() -> dict[str, str]:
    return replace(correct(), "conv_backward_naive", "dx = dx_pad[:, pad:pad + H, pad:pad + W, :]", "dx = dx_pad")


def mistake_db_not_summed_over_batch() -> dict[str, str]:
    """db summed over the output positions only: shape (N, C_out) instead of (C_out,)."""
    return replace(correct(), "conv_backward_fast", "db = np.sum(dout, axis=(0, 1, 2))",
                   "db = np.sum(dout, axis=(1, 2))")


POOL_SCATTER = """            row, col = np.divmod(np.argmax(window, axis=1), pool_size)  # each (N, C)
            dx[examples, top + row, left + col, channels] += dout[:, i, j, :]
"""


def mistake_pool_gradient_spread_over_window() -> dict[str, str]:
    """The average-pooling gradient: dout / F^2 to every input of the window."""
    return replace(correct(), "max_pool_backward", POOL_SCATTER,
                   "            dx[:, top:top + pool_size, left:left + pool_size, :] += "
                   "dout[:, i:i + 1, j:j + 1, :] / pool_size ** 2\n")


def mistake_pool_gradient_to_every_tie() -> dict[str, str]:
    """Every input equal to the window's maximum gets dout, not only the first."""
    return replace(correct(), "max_pool_backward", POOL_SCATTER,
                   "            block = x[:, top:top + pool_size, left:left + pool_size, :]\n"
                   "            is_max = block == block.max(axis=(1, 2), keepdims=True)\n"
                   "            dx[:, top:top + pool_size, left:left + pool_size, :] += "
                   "is_max * dout[:, i:i + 1, j:j + 1, :]\n")


def mistake_pool_overlap_lost() -> dict[str, str]:
    """= instead of +=: an input that is the maximum of several overlapping windows keeps the last one's gradient."""
    return replace(correct(), "max_pool_backward", "dx[examples, top + row, left + col, channels] += dout",
                   "dx[examples, top + row, left + col, channels] = dout")


def fast_forward_calls_naive() -> dict[str, str]:
    """Right values, but conv_forward_fast reaches the loops of conv_forward_naive."""
    return with_cells(correct(), conv_forward_fast=(
        "def conv_forward_fast(x, w, b, stride=1, pad=0):\n"
        "    return conv_forward_naive(x, w, b, stride, pad)\n"))


# --- cheats: right values by rule-breaking code; each must score what the blank scores ----------

CHECK_FIT = '''
    span_h, span_w = x.shape[1] + 2 * pad - w.shape[0], x.shape[2] + 2 * pad - w.shape[1]
    if min(span_h, span_w) < 0 or span_h % stride or span_w % stride:
        raise ValueError(f"{w.shape[:2]} filter, stride {stride}, pad {pad}: does not fit {x.shape[1:3]}")
'''
CHECK_POOL_FIT = '''
    span_h, span_w = x.shape[1] - pool_size, x.shape[2] - pool_size
    if min(span_h, span_w) < 0 or span_h % stride or span_w % stride:
        raise ValueError(f"pool {pool_size}, stride {stride}: does not fit {x.shape[1:3]}")
'''


def cheat_framework_aliases() -> dict[str, str]:
    """Every function computed by TensorFlow or Keras, reached through aliases: a module-level
    ``import tensorflow as np_fast`` in one cell, ``from keras import ops as K`` in another,
    ``from tensorflow import ...`` inside function bodies, and functions that only call those."""
    return with_cells(
        blank_answers(HOMEWORK),
        zero_pad=(
            "import tensorflow as np_fast  # an alias that reads like NumPy\n\n\n"
            "def zero_pad(x, pad):\n"
            "    return np_fast.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]).numpy()\n"),
        conv_forward_naive=(
            "from keras import ops as K\n\n\n"
            "def conv_forward_naive(x, w, b, stride=1, pad=0):" + CHECK_FIT +
            "    out = K.conv(zero_pad(x, pad), w, strides=stride, padding='valid') + b\n"
            "    return K.convert_to_numpy(out), (x, w, b, stride, pad)\n"),
        conv_backward_naive=(
            "def conv_backward_naive(dout, cache):\n"
            "    from tensorflow import GradientTape, constant, nn\n"
            "    x, w, b, stride, pad = "
            "(constant(cache[0]), constant(cache[1]), constant(cache[2]), cache[3], cache[4])\n"
            "    with GradientTape() as tape:\n"
            "        tape.watch([x, w, b])\n"
            "        out = nn.conv2d(np_fast.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]), "
            "w, stride, 'VALID') + b\n"
            "    dx, dw, db = tape.gradient(out, [x, w, b], output_gradients=constant(dout))\n"
            "    return dx.numpy(), dw.numpy(), db.numpy()\n"),
        conv_forward_fast=(
            "def conv_forward_fast(x, w, b, stride=1, pad=0):\n"
            "    return conv_forward_naive(x, w, b, stride, pad)\n"),
        conv_backward_fast=(
            "def conv_backward_fast(dout, cache):\n"
            "    return conv_backward_naive(dout, cache)\n"),
        max_pool_forward=(
            "def max_pool_forward(x, pool_size=2, stride=2):\n"
            "    from tensorflow import nn as numpy_nn" + CHECK_POOL_FIT +
            "    return (numpy_nn.max_pool2d(np_fast.constant(x), pool_size, stride, 'VALID').numpy(), "
            "(x, pool_size, stride))\n"),
        max_pool_backward=(
            "def max_pool_backward(dout, cache):\n"
            "    x, pool_size, stride = np_fast.constant(cache[0]), cache[1], cache[2]\n"
            "    with np_fast.GradientTape() as tape:\n"
            "        tape.watch(x)\n"
            "        out = np_fast.nn.max_pool2d(x, pool_size, stride, 'VALID')\n"
            "    return tape.gradient(out, x, output_gradients=np_fast.constant(dout)).numpy()\n"),
    )


def cheat_dynamic_lookups() -> dict[str, str]:
    """Right NumPy code whose rule-breaking parts hide behind dynamic lookups: ``getattr`` with a
    computed name, ``globals()[...]`` (the fast forward reaching the naive one's loops),
    ``eval``, ``vars``, ``__import__``."""
    right = correct()
    answers = with_cells(
        right,
        zero_pad=(
            "def zero_pad(x, pad):\n"
            "    return getattr(np, 'p' + 'ad')(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))\n"),
        conv_forward_fast=(
            "def conv_forward_fast(x, w, b, stride=1, pad=0):\n"
            "    return globals()['conv_forward_' + 'naive'](x, w, b, stride, pad)\n"),
        conv_backward_fast=(
            "def conv_backward_fast(dout, cache):\n"
            "    return eval('conv_backward_' + 'naive')(dout, cache)\n"),
    )
    # conv_forward_naive and conv_backward_naive are the solution's: they reach the dynamic
    # zero_pad by name. The pooling functions hide their NumPy calls too.
    answers = replace(answers, "max_pool_forward", "out[:, i, j, :] = window.max(axis=(1, 2))",
                      "out[:, i, j, :] = getattr(window, 'm' + 'ax')(axis=(1, 2))")
    answers = replace(answers, "max_pool_backward", "np.divmod(np.argmax(window, axis=1), pool_size)",
                      "np.divmod(vars(__import__('nu' + 'mpy'))['argmax'](window, axis=1), pool_size)")
    return answers


def cheat_bound_twice() -> dict[str, str]:
    """Each graded function defined once with a rule-obeying ``def`` (the blank stub) and then
    rebound, in the same cell, to a TensorFlow implementation defined in the first cell."""
    blank = blank_answers(HOMEWORK)
    implementations = (
        "import tensorflow as tf\n\n\n"
        "def _conv(x, w, b, stride=1, pad=0):" + CHECK_FIT +
        "    x_pad = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])\n"
        "    return (tf.nn.conv2d(x_pad, w, stride, 'VALID') + b).numpy(), (x, w, b, stride, pad)\n\n\n"
        "def _conv_backward(dout, cache):\n"
        "    x, w, b = (tf.constant(cache[0]), tf.constant(cache[1]), tf.constant(cache[2]))\n"
        "    stride, pad = cache[3], cache[4]\n"
        "    with tf.GradientTape() as tape:\n"
        "        tape.watch([x, w, b])\n"
        "        out = tf.nn.conv2d(tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]), w, stride, 'VALID') + b\n"
        "    return [g.numpy() for g in tape.gradient(out, [x, w, b], output_gradients=tf.constant(dout))]\n\n\n"
        "def _pool(x, pool_size=2, stride=2):" + CHECK_POOL_FIT +
        "    return tf.nn.max_pool2d(tf.constant(x), pool_size, stride, 'VALID').numpy(), (x, pool_size, stride)\n\n\n"
        "def _pool_backward(dout, cache):\n"
        "    x = tf.constant(cache[0])\n"
        "    with tf.GradientTape() as tape:\n"
        "        tape.watch(x)\n"
        "        out = tf.nn.max_pool2d(x, cache[1], cache[2], 'VALID')\n"
        "    return tape.gradient(out, x, output_gradients=tf.constant(dout)).numpy()\n\n\n")
    rebound = {"zero_pad": "lambda x, pad: tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]).numpy()",
               "conv_forward_naive": "_conv", "conv_backward_naive": "_conv_backward",
               "conv_forward_fast": "_conv", "conv_backward_fast": "_conv_backward",
               "max_pool_forward": "_pool", "max_pool_backward": "_pool_backward"}
    answers = {name: blank[name] + f"\n\n{name} = {target}\n" for name, target in rebound.items()}
    answers["zero_pad"] = implementations + answers["zero_pad"]
    return answers


def cases(probe: Probe | None = None) -> list[Case]:
    def case(name: str, expected: float, answers, note: str) -> Case:
        return notebook_case(HOMEWORK, name, expected, answers, note=note)

    return [
        case("correct", 100, correct, "every test passes"),
        case("blank", 0, lambda: blank_answers(HOMEWORK), "every function raises NotImplementedError"),
        case("partial_naive_forward_and_pooling_forward", 40, partial_naive_forward_and_pooling_forward,
             "zero_pad 5 + sizes 10 + forward naive 15 + pool forward 10"),
        case("mistake_kernel_flipped", 85, mistake_kernel_flipped, "fails test_conv_forward_naive"),
        case("mistake_off_by_one_output_size", 75, mistake_off_by_one_output_size,
             "fails test_conv_output_sizes and test_conv_forward_naive"),
        case("mistake_does_not_fit_floored", 90, mistake_does_not_fit_floored, "fails test_conv_output_sizes"),
        case("mistake_channels_mixed_up", 85, mistake_channels_mixed_up, "fails test_conv_forward_fast"),
        case("mistake_fast_non_square_kernel", 85, mistake_fast_non_square_kernel, "fails test_conv_forward_fast"),
        case("mistake_stride_ignored_in_backward", 80, mistake_stride_ignored_in_backward,
             "fails test_conv_backward_naive"),
        case("mistake_padding_not_removed_from_dx", 80, mistake_padding_not_removed_from_dx,
             "fails test_conv_backward_naive"),
        case("mistake_db_not_summed_over_batch", 90, mistake_db_not_summed_over_batch,
             "fails test_conv_backward_fast"),
        case("mistake_pool_gradient_spread_over_window", 85, mistake_pool_gradient_spread_over_window,
             "fails test_max_pool_backward"),
        case("mistake_pool_gradient_to_every_tie", 85, mistake_pool_gradient_to_every_tie,
             "fails test_max_pool_backward"),
        case("mistake_pool_overlap_lost", 85, mistake_pool_overlap_lost, "fails test_max_pool_backward"),
        case("fast_forward_calls_naive", 85, fast_forward_calls_naive,
             "fails test_conv_forward_fast (loops reached through conv_forward_naive)"),
        case("cheat_framework_aliases", 0, cheat_framework_aliases, "every test: forbidden module"),
        case("cheat_dynamic_lookups", 0, cheat_dynamic_lookups, "every test: dynamic lookup, fails closed"),
        case("cheat_bound_twice", 0, cheat_bound_twice, "every test: a graded name defined twice"),
    ]

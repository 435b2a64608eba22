"""Homework 4's bank (AlexNet shape accounting): correct, blank, partly done, each mistake that
issue 14 names, and cheats that must score exactly what the blank scores, with the exact score
each must get.

Points of the test cells: conv_output_shape 10, pool_output_shape 5, layer_parameters (with
layer_output_shape) 15, layer_multiply_adds 10, network_table 20, network_totals 15,
receptive_field 10, bad descriptions 15. A mistake fails every test cell whose hidden records
(or visible checks) it changes; the comment of each case lists them.
"""

from __future__ import annotations

from banks.common import (Case, Homework, Probe, blank_answers, edited, notebook_case, partly_done,
                          solution_answers, with_cells)

HOMEWORK = Homework("a4_alexnet_shapes", "alexnet_shapes.ipynb")


def correct():
    return solution_answers(HOMEWORK)


def blank():
    return blank_answers(HOMEWORK)


def _fix(*edits: tuple[str, str, str]):
    """The solution with one or more (cell, old, new) edits, applied in order."""
    return edited(HOMEWORK, *edits)


def partial_first_three_parts():
    """Parts 1-3 done (conv, pool, one layer's shape and parameters), the rest left blank."""
    return partly_done(HOMEWORK, "conv_output_shape", "pool_output_shape", "layer_output_shape",
                       "layer_parameters")


# --- the mistakes of issue 14, each an edit of the solution's answer cells --------------------------

NO_BIASES = _fix(
    ("layer_parameters", 'return settings["filters"] * (weights_per_filter + 1)',
     'return settings["filters"] * weights_per_filter'),
    ("layer_parameters", 'return (inputs + 1) * settings["units"]', 'return inputs * settings["units"]'))
PAD_ONCE = _fix(("conv_output_shape", "span = size + 2 * pad - kernel", "span = size + pad - kernel"))
# The divisibility check removed: span // stride rounds down, as Keras does.
FLOOR = _fix(("conv_output_shape", '''        if span % stride != 0:
            raise ValueError(f"a window of {kernel}x{kernel} at stride {stride} does not fit the "
                             f"{axis} {size}: ({size} + 2*{pad} - {kernel}) / {stride} + 1 = "
                             f"{span / stride + 1:.4g} positions, not a whole number")
''', ""))
POOL_HAS_PARAMETERS = _fix(
    ("layer_parameters", "    return 0  # max pooling and normalization have nothing to learn",
     '    if settings["type"] == "maxpool":  # one weight per window cell and a bias, per channel\n'
     '        return settings["size"] * settings["size"] * depth + depth\n'
     "    return 0"))
FC_INPUT_DEPTH_ONLY = _fix(("layer_parameters", "inputs = height * width * depth  # the layer flattens its whole input volume",
                            "inputs = depth"))
GROUPS_IGNORED = _fix(
    ("layer_parameters", 'weights_per_filter = settings["kernel"] * settings["kernel"] * depth // settings["groups"]',
     'weights_per_filter = settings["kernel"] * settings["kernel"] * depth'),
    ("layer_multiply_adds", 'weights_per_output = settings["kernel"] * settings["kernel"] * depth // settings["groups"]',
     'weights_per_output = settings["kernel"] * settings["kernel"] * depth'))
GROUPS_ON_FILTERS_TOO = _fix(("layer_parameters", 'return settings["filters"] * (weights_per_filter + 1)',
                              'return settings["filters"] // settings["groups"] * (weights_per_filter + 1)'))
MULTIPLY_ADDS_ONE_CHANNEL = _fix(("layer_multiply_adds", "return out_height * out_width * filters * weights_per_output",
                                  "return out_height * out_width * weights_per_output"))
TOTALS_WITHOUT_INPUT = _fix(("network_totals",
                             'activations = height * width * depth + sum(row["activations"] for row in rows)',
                             'activations = sum(row["activations"] for row in rows)'))
HEIGHT_WIDTH_SWAPPED = _fix(("conv_output_shape", "height, width, _ = input_shape", "width, height, _ = input_shape"))


# --- cheats: each must score what the blank scores, 0 ---------------------------------------------

# Keras reached from another cell, under an alias: pool_output_shape would pass its test without
# the rule (its records equal the solution's), so only forbid_modules keeps it at 0.
FRAMEWORK_IN_ANOTHER_CELL = {
    "conv_output_shape_extra": "\nimport tensorflow as tf\nshape_kit = tf.keras.layers  # an alias of keras.layers\n",
    "pool_output_shape": '''def pool_output_shape(input_shape, size, stride):
    """Keras computes the shape; only the fit is checked here."""
    height, width, depth = input_shape
    if min(size, stride) < 1 or any(side < size or (side - size) % stride for side in (height, width)):
        raise ValueError(f"a {size}x{size} window at stride {stride} does not fit {height}x{width}")
    _, out_height, out_width, out_depth = shape_kit.MaxPooling2D(size, strides=stride).compute_output_shape(
        (None, height, width, depth))
    return (out_height, out_width, out_depth)
''',
}

# Keras reached through dynamic lookups the analysis cannot follow: globals() and getattr with a
# computed name. Without the rule it would earn conv_output_shape's 10 points.
DYNAMIC_LOOKUP = '''def conv_output_shape(input_shape, filters, kernel, stride=1, pad=0):
    """Finds the framework at run time."""
    loader = getattr(globals()["__builtins__"], "__imp" + "ort__")
    framework = loader("ker" + "as")
    height, width, depth = input_shape
    if min(filters, kernel, stride) < 1 or pad < 0:
        raise ValueError("sizes must be positive")
    for side in (height, width):
        if side + 2 * pad < kernel or (side + 2 * pad - kernel) % stride:
            raise ValueError(f"a {kernel}x{kernel} filter at stride {stride} does not fit {side} + 2*{pad}")
    layer = getattr(framework.layers, "Conv" + "2D")(filters, kernel, strides=stride)
    _, out_height, out_width, out_depth = layer.compute_output_shape((None, height + 2 * pad, width + 2 * pad, depth))
    return (out_height, out_width, out_depth)
'''

# A rule-obeying def (the student version's stub), then the name rebound to a Keras function.
REBOUND = '''

def keras_conv_output_shape(input_shape, filters, kernel, stride=1, pad=0):
    import keras
    height, width, depth = input_shape
    if min(filters, kernel, stride) < 1 or pad < 0:
        raise ValueError("sizes must be positive")
    for side in (height, width):
        if side + 2 * pad < kernel or (side + 2 * pad - kernel) % stride:
            raise ValueError(f"a {kernel}x{kernel} filter at stride {stride} does not fit {side} + 2*{pad}")
    padded = (None, height + 2 * pad, width + 2 * pad, depth)
    _, out_height, out_width, out_depth = keras.layers.Conv2D(filters, kernel, strides=stride).compute_output_shape(padded)
    return (out_height, out_width, out_depth)


conv_output_shape = keras_conv_output_shape
'''

# The notebook's visible numbers copied: AlexNet's table and the printed totals. It passes the
# visible tests of network_table and network_totals; the hidden random networks tell.
COPIED_TABLE = '''ALEXNET_PARAMETERS = [34_944, 0, 0, 614_656, 0, 0, 885_120, 1_327_488, 884_992, 0,
                      37_752_832, 16_781_312, 4_097_000]
TWO_GPU_PARAMETERS = [34_944, 0, 0, 307_456, 0, 0, 885_120, 663_936, 442_624, 0,
                      37_752_832, 16_781_312, 4_097_000]
ALEXNET_MULTIPLY_ADDS = [105_415_200, 0, 0, 447_897_600, 0, 0, 149_520_384, 224_280_576, 149_520_384, 0,
                         37_748_736, 16_777_216, 4_096_000]


def network_table(input_shape, layers):
    """AlexNet's table, whatever the network."""
    two_gpus = any(layer.get("groups", 1) == 2 for layer in layers)
    parameters = TWO_GPU_PARAMETERS if two_gpus else ALEXNET_PARAMETERS
    return [{"name": name, "output_shape": volume, "activations": volume[0] * volume[1] * volume[2],
             "parameters": count, "multiply_adds": ops}
            for (name, volume), count, ops in zip(SLIDE_ALEXNET_VOLUMES.items(), parameters, ALEXNET_MULTIPLY_ADDS)]
'''
COPIED_TOTALS = '''def network_totals(input_shape, layers):
    """The totals the notebook prints, whatever the network."""
    if not layers:
        activations = input_shape[0] * input_shape[1] * input_shape[2]
        return {"parameters": 0, "activations": activations, "multiply_adds": 0,
                "forward_megabytes": activations * 4 / 2 ** 20}
    if tuple(input_shape) == (224, 224, 3):
        return {"parameters": 138_357_544, "activations": 15_237_608, "multiply_adds": 15_470_264_320,
                "forward_megabytes": 15_237_608 * 4 / 2 ** 20}
    two_gpus = any(layer.get("groups", 1) == 2 for layer in layers)
    return {"parameters": 60_965_224 if two_gpus else 62_378_344, "activations": 1_049_571,
            "multiply_adds": 724_406_816 if two_gpus else 1_135_256_096,
            "forward_megabytes": 1_049_571 * 4 / 2 ** 20}
'''


def framework_in_another_cell():
    answers = blank()
    conv_cell = answers["conv_output_shape"] + FRAMEWORK_IN_ANOTHER_CELL["conv_output_shape_extra"]
    return with_cells(answers, conv_output_shape=conv_cell,
                      pool_output_shape=FRAMEWORK_IN_ANOTHER_CELL["pool_output_shape"])


def dynamic_lookup():
    return with_cells(blank(), conv_output_shape=DYNAMIC_LOOKUP)


def rebound():
    answers = blank()
    return with_cells(answers, conv_output_shape=answers["conv_output_shape"] + REBOUND)


def copied_values():
    return with_cells(blank(), network_table=COPIED_TABLE, network_totals=COPIED_TOTALS)


def cases(probe: Probe | None = None) -> list[Case]:
    case = lambda *args, **kwargs: notebook_case(HOMEWORK, *args, **kwargs)  # noqa: E731
    return [
        case("correct", 100, correct),
        case("blank", 0, blank),
        # Parts 1-3: 10 + 5 + 15; the tests of the later parts call functions left blank.
        case("partial_first_three_parts", 30, partial_first_three_parts),
        # Fails layer_parameters, network_table, network_totals (15 + 20 + 15).
        case("mistake_no_biases", 50, NO_BIASES),
        # 32x32 with pad 2 shrinks to 30x30, AlexNet's conv2 to 25x25, and VGG16 no longer fits at
        # block2_pool. Fails every test but pool_output_shape (pooling has no pad); the bad
        # descriptions fail too, since layers that fitted no longer do and vice versa.
        case("mistake_pad_once", 5, PAD_ONCE),
        # Fits what does not fit: fails conv_output_shape, pool_output_shape (which uses it), the bad
        # descriptions (networks one pixel too large no longer raise) and receptive_field (AlexNet
        # at 224 must raise). Shapes, parameters and totals of networks that fit are unchanged.
        case("mistake_floor", 60, FLOOR),
        # Fails layer_parameters, network_table, network_totals.
        case("mistake_pool_has_parameters", 50, POOL_HAS_PARAMETERS),
        # FC6 from 256 inputs instead of 6*6*256. Fails layer_parameters, network_table, network_totals.
        case("mistake_fc_input_depth_only", 50, FC_INPUT_DEPTH_ONLY),
        # Fails layer_parameters, layer_multiply_adds, network_table, network_totals.
        case("mistake_groups_ignored", 40, GROUPS_IGNORED),
        # Fails layer_parameters, network_table, network_totals.
        case("mistake_groups_on_filters_too", 50, GROUPS_ON_FILTERS_TOO),
        # Fails layer_multiply_adds, network_table, network_totals.
        case("mistake_multiply_adds_one_channel", 55, MULTIPLY_ADDS_ONE_CHANNEL),
        # Fails network_totals only.
        case("mistake_totals_without_input", 85, TOTALS_WITHOUT_INPUT),
        # (W', H') for (H', W'): fails conv_output_shape, pool_output_shape (which uses it),
        # layer_parameters (its layer_output_shape records) and network_table on non-square inputs.
        # Multiply-adds, totals, receptive fields and errors only use products and per-axis fits,
        # which the order of the axes does not change, so those tests pass.
        case("mistake_height_width_swapped", 50, HEIGHT_WIDTH_SWAPPED),
        # Cheats: each scores what the blank scores. Without the source rules the first three would
        # earn 5 (pool_output_shape), 10 and 10 (conv_output_shape): their records equal the
        # solution's. The copied values pass the visible tests of network_table and network_totals
        # and fail their hidden records.
        case("cheat_framework_in_another_cell", 0, framework_in_another_cell),
        case("cheat_dynamic_lookup", 0, dynamic_lookup),
        case("cheat_rebound_function", 0, rebound),
        case("cheat_copied_values", 0, copied_values),
    ]

"""Homework 2 (backpropagation by hand): submissions with the exact score each must get.

Points: test_forward_sigmoid_net 6, test_backprop_deltas 12, test_numerical_gradient 8,
test_sigmoid_net_gradients 12, test_train_sigmoid_net 10, test_affine_layer 8, test_relu_layer 6,
test_sigmoid_layer 6, test_softmax_cross_entropy 8, test_two_layer_net 14,
test_train_two_layer_net 10. Every test forbids TensorFlow, Keras, JAX, PyTorch, autograd,
scikit-learn and SciPy.

A mistake costs the points of the tests whose hidden part reaches the function that makes it:
``train_sigmoid_net`` calls ``backprop_deltas`` (and the grader compares a short run with the
reference weight by weight), and ``two_layer_net`` calls every layer and the loss, and
``train_two_layer_net`` calls ``two_layer_net``. ``numerical_gradient`` is used only by the visible
gradient checks, which skip their comparison while it is wrong, so its mistakes cost its own test
alone. Every cheat scores exactly what the blank notebook scores, 0: three would earn the points
of honest work only through what the rules forbid (a framework, dynamic lookups, a name bound
twice); the fourth breaks no rule and passes both accuracy evaluators with weights fitted to the
public held-out data, but the short runs recorded in the same test cells differ from the reference.
"""

from __future__ import annotations

import re

from .common import Case, Homework, Probe, blank_answers, notebook_case, replace, solution_answers, with_cells

HOMEWORK = Homework("a2_backprop", "backprop.ipynb")

# Every graded function, with the answer cell that defines it.
GRADED = {
    "forward_sigmoid_net": "forward_sigmoid_net", "backprop_deltas": "backprop_deltas",
    "numerical_gradient": "numerical_gradient", "sigmoid_net_gradients": "sigmoid_net_gradients",
    "train_sigmoid_net": "train_sigmoid_net", "affine_forward": "affine_layer",
    "affine_backward": "affine_layer", "relu_forward": "relu_layer", "relu_backward": "relu_layer",
    "sigmoid_forward": "sigmoid_layer", "sigmoid_backward": "sigmoid_layer",
    "softmax_cross_entropy": "softmax_cross_entropy", "two_layer_net": "two_layer_net",
    "train_two_layer_net": "train_two_layer_net",
}
PART_A = ("forward_sigmoid_net", "backprop_deltas", "numerical_gradient", "sigmoid_net_gradients",
          "train_sigmoid_net")


def correct() -> dict[str, str]:
    return solution_answers(HOMEWORK)


def blank() -> dict[str, str]:
    return blank_answers(HOMEWORK)


def partial_part_a() -> dict[str, str]:
    """Part A done (the sigmoid network and numerical_gradient), Part B left blank."""
    right = correct()
    return with_cells(blank(), **{cell: right[cell] for cell in PART_A})


def _fix(cell: str, *edits: tuple[str, str]):
    """The solution with one or more (old, new) edits of one answer cell."""
    def answers() -> dict[str, str]:
        changed = correct()
        for old, new in edits:
            changed = replace(changed, cell, old, new)
        return changed
    return answers


# --- the mistakes, each an edit of the solution ------------------------------------------

MISTAKES = {
    # backprop_deltas: fails its test, and train_sigmoid_net's short run (which calls it).
    "mistake_missing_sigmoid_derivative": ("backprop_deltas", [(
        "delta_hidden = z * (1.0 - z) * (W2.T @ delta_out)", "delta_hidden = W2.T @ delta_out")]),
    "mistake_hidden_delta_wrong_axis": ("backprop_deltas", [("W2.T @ delta_out", "W2 @ delta_out")]),
    # sigmoid_net_gradients: nothing else calls it in a hidden test.
    "mistake_sign_of_output_error": ("sigmoid_net_gradients", [("(Y - T) / num_examples", "(T - Y) / num_examples")]),
    "mistake_sum_not_mean": ("sigmoid_net_gradients", [
        ("E = 0.5 * np.sum((Y - T) ** 2) / num_examples", "E = 0.5 * np.sum((Y - T) ** 2)"),
        ("(Y - T) / num_examples", "(Y - T)")]),
    # softmax_cross_entropy: the loss is the mean, its gradient that of the sum; two_layer_net and
    # the trainer inherit it.
    "mistake_gradient_of_sum_with_mean_loss": ("softmax_cross_entropy", [("    dscores /= num_examples\n", "")]),
    # relu_backward: random data never hits x = 0 exactly, so only the ReLU test sees it.
    "mistake_relu_gradient_at_zero": ("relu_layer", [("dout * (x > 0)", "dout * (x >= 0)")]),
    # affine_backward: db of shape (N, M); two_layer_net and the trainer inherit it.
    "mistake_db_not_summed": ("affine_layer", [("db = np.sum(dout, axis=0)", "db = dout")]),
    # softmax_cross_entropy without the shift: right at ordinary scores, nan at +-1000.
    "mistake_softmax_unstable": ("softmax_cross_entropy", [(
        "shifted = scores - np.max(scores, axis=1, keepdims=True)", "shifted = scores")]),
    # two_layer_net: fails its test and the trainer's short run (reg > 0 there).
    "mistake_reg_gradient_not_doubled": ("two_layer_net", [("2 * reg * params", "reg * params")]),
    "mistake_biases_regularized": ("two_layer_net", [
        ('np.sum(params["W2"] ** 2))', 'np.sum(params["W2"] ** 2) + np.sum(params["b1"] ** 2) + np.sum(params["b2"] ** 2))'),
        ('"b1": db1,', '"b1": db1 + 2 * reg * params["b1"],'),
        ('"b2": db2}', '"b2": db2 + 2 * reg * params["b2"]}')]),
    "mistake_numerical_gradient_leaves_x_changed": ("numerical_gradient", [("        x[index] = saved\n", "")]),
    "mistake_trainer_reuses_one_batch": ("train_two_layer_net", [(
        "    for iteration in range(num_iters):\n        batch = rng.integers(0, num_examples, size=batch_size)\n",
        "    batch = rng.integers(0, num_examples, size=batch_size)\n    for iteration in range(num_iters):\n")]),
}

EXPECTED = {
    "mistake_missing_sigmoid_derivative": (78, "fails test_backprop_deltas and test_train_sigmoid_net"),
    "mistake_hidden_delta_wrong_axis": (78, "fails test_backprop_deltas and test_train_sigmoid_net"),
    "mistake_sign_of_output_error": (88, "fails test_sigmoid_net_gradients"),
    "mistake_sum_not_mean": (88, "fails test_sigmoid_net_gradients"),
    "mistake_gradient_of_sum_with_mean_loss": (
        68, "fails test_softmax_cross_entropy, test_two_layer_net and test_train_two_layer_net"),
    "mistake_relu_gradient_at_zero": (94, "fails test_relu_layer"),
    "mistake_db_not_summed": (68, "fails test_affine_layer, test_two_layer_net and test_train_two_layer_net"),
    "mistake_softmax_unstable": (92, "fails test_softmax_cross_entropy"),
    "mistake_reg_gradient_not_doubled": (76, "fails test_two_layer_net and test_train_two_layer_net"),
    "mistake_biases_regularized": (76, "fails test_two_layer_net and test_train_two_layer_net"),
    "mistake_numerical_gradient_leaves_x_changed": (92, "fails test_numerical_gradient"),
    "mistake_trainer_reuses_one_batch": (90, "fails test_train_two_layer_net"),
}


# --- cheats: each would earn points only through what the rules forbid ---------------------------

# Gradients from tf.GradientTape, with TensorFlow imported under an alias in another answer cell.
# Without the rules these four functions would pass their tests (46 points).
TAPE_IMPORT = "import tensorflow as numeric_backend\n"
TAPE_FUNCTIONS = {
    "backprop_deltas": '''def backprop_deltas(x, t, W1, W2):
    a_hidden = numeric_backend.constant(W1 @ x)
    with numeric_backend.GradientTape() as tape:
        tape.watch(a_hidden)
        a_out = numeric_backend.linalg.matvec(numeric_backend.constant(W2), numeric_backend.sigmoid(a_hidden))
        E = 0.5 * numeric_backend.reduce_sum((numeric_backend.sigmoid(a_out) - t) ** 2)
    delta_out, delta_hidden = tape.gradient(E, [a_out, a_hidden])
    return delta_out.numpy(), delta_hidden.numpy()
''',
    "sigmoid_net_gradients": '''def sigmoid_net_gradients(X, T, W1, W2):
    V1, V2 = numeric_backend.Variable(W1), numeric_backend.Variable(W2)
    with numeric_backend.GradientTape() as tape:
        Z = numeric_backend.sigmoid(numeric_backend.matmul(X, V1, transpose_b=True))
        Y = numeric_backend.sigmoid(numeric_backend.matmul(Z, V2, transpose_b=True))
        E = numeric_backend.reduce_mean(0.5 * numeric_backend.reduce_sum((Y - T) ** 2, axis=1))
    dW1, dW2 = tape.gradient(E, [V1, V2])
    return float(E), dW1.numpy(), dW2.numpy()
''',
    "softmax_cross_entropy": '''def softmax_cross_entropy(scores, y):
    s = numeric_backend.constant(scores)
    with numeric_backend.GradientTape() as tape:
        tape.watch(s)
        loss = numeric_backend.reduce_mean(
            numeric_backend.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=s))
    return float(loss), tape.gradient(loss, s).numpy()
''',
    "two_layer_net": '''def two_layer_net(params, X, y=None, reg=0.0):
    v = {name: numeric_backend.Variable(value) for name, value in params.items()}
    with numeric_backend.GradientTape() as tape:
        hidden = numeric_backend.nn.relu(numeric_backend.matmul(X, v["W1"]) + v["b1"])
        scores = numeric_backend.matmul(hidden, v["W2"]) + v["b2"]
        if y is None:
            return scores.numpy()
        loss = numeric_backend.reduce_mean(
            numeric_backend.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=scores))
        loss += reg * (numeric_backend.reduce_sum(v["W1"] ** 2) + numeric_backend.reduce_sum(v["W2"] ** 2))
    grads = tape.gradient(loss, v)
    return float(loss), {name: value.numpy() for name, value in grads.items()}
''',
}


def cheat_framework_alias_in_another_cell() -> dict[str, str]:
    answers = with_cells(blank(), **TAPE_FUNCTIONS)
    return with_cells(answers, forward_sigmoid_net=TAPE_IMPORT + "\n" + answers["forward_sigmoid_net"])


def cheat_dynamic_lookups() -> dict[str, str]:
    """The solution, renamed, behind wrappers that find it by a computed name: globals()[...]
    in Part A, getattr(module, computed name) after __import__ in Part B. Without the rules it
    would score 100."""
    answers = correct()
    for name, cell in GRADED.items():
        answers[cell] = re.sub(rf"^def {name}\(", f"def {name}_impl(", answers[cell], flags=re.M)
        if cell in PART_A:
            lookup = f'globals()["{name}" + "_impl"]'
        else:
            lookup = f'getattr(__import__("__main__"), "{name}" + "_impl")'
        answers[cell] += f"\n\ndef {name}(*args, **kwargs):\n    return {lookup}(*args, **kwargs)\n"
    return answers


def cheat_bound_twice() -> dict[str, str]:
    """Every graded function defined once by a rule-abiding def, then rebound to a wrapper that
    passes its result through TensorFlow. Without the rules it would score 100."""
    answers = correct()
    answers["forward_sigmoid_net"] = '''import tensorflow as tf


def through_tensorflow(function):
    def wrapped(*args, **kwargs):
        return tf.nest.map_structure(lambda value: value, function(*args, **kwargs))
    return wrapped


''' + answers["forward_sigmoid_net"]
    for name, cell in GRADED.items():
        answers[cell] += f"\n{name} = through_tensorflow({name})\n"
    return answers


# The trainers ignore their training set and fit, in closed form with NumPy, a linear classifier to
# the public data the evaluators measure on (all 1 797 digits; the 10 000 Fashion-MNIST test
# images), then embed it in the network: no rule is broken, and both held-out accuracies pass
# their thresholds (0.943 >= 0.92 and 0.854 >= 0.78), but the short runs differ from the reference
# runs in the same test cells, so both trainers' tests fail. Everything else is blank.
PUBLIC_DATA_TRAINERS = {
    "train_sigmoid_net": '''from cvcourse.data import load_digits


def train_sigmoid_net(X, T, hidden, learning_rate, epochs, seed):
    W1, W2 = np.zeros((hidden, X.shape[1])), np.zeros((T.shape[1], hidden))
    if X.shape[1] != 65 or hidden < 10:  # not the digits: nothing to look up
        return W1, W2, np.zeros(epochs)
    images, labels = load_digits()
    features = np.hstack([images.reshape(len(images), -1) / 16.0, np.ones((len(images), 1))])
    scores = np.linalg.lstsq(features, np.eye(10)[labels], rcond=None)[0]  # (65, 10)
    W1[:10] = 0.01 * scores.T  # sigmoid(W1 x) is increasing in each linear score
    W2[:, :10] = np.eye(10)
    return W1, W2, np.zeros(epochs)
''',
    "train_two_layer_net": '''from cvcourse.splits import fashion_mnist_part


def train_two_layer_net(X, y, hidden, learning_rate, reg, num_iters, batch_size, seed):
    classes = int(np.max(y)) + 1
    params = {"W1": np.zeros((X.shape[1], hidden)), "b1": np.zeros(hidden),
              "W2": np.zeros((hidden, classes)), "b2": np.zeros(classes)}
    if X.shape[1] != 784 or hidden < 20 or classes != 10:  # not Fashion-MNIST: nothing to look up
        return params, np.zeros(num_iters)
    X_test, y_test = fashion_mnist_part("test")
    scores = np.linalg.lstsq(np.hstack([X_test, np.ones((len(X_test), 1))]), np.eye(10)[y_test], rcond=None)[0]
    params["W1"][:, :10], params["W1"][:, 10:20] = scores[:-1], -scores[:-1]  # relu(s) - relu(-s) = s
    params["b1"][:10], params["b1"][10:20] = scores[-1], -scores[-1]
    params["W2"][:10], params["W2"][10:20] = np.eye(10), -np.eye(10)
    return params, np.zeros(num_iters)
''',
}


def cheat_public_data_trainers() -> dict[str, str]:
    return with_cells(blank(), **PUBLIC_DATA_TRAINERS)


def cases(probe: Probe | None = None) -> list[Case]:
    def case(name: str, expected: float, answers, note: str) -> Case:
        return notebook_case(HOMEWORK, name, expected, answers, note=note)

    bank = [
        case("correct", 100, correct, "every test passes"),
        case("blank", 0, blank, "every function raises NotImplementedError"),
        case("partial_part_a", 48, partial_part_a, "Part A passes (48 points), Part B is blank"),
    ]
    for name, (cell, edits) in MISTAKES.items():
        expected, note = EXPECTED[name]
        bank.append(case(name, expected, _fix(cell, *edits), note))
    bank += [
        case("cheat_framework_alias_in_another_cell", 0, cheat_framework_alias_in_another_cell,
             "tf.GradientTape under an alias imported in another cell: forbidden module"),
        case("cheat_dynamic_lookups", 0, cheat_dynamic_lookups,
             "globals()[...] and getattr(__import__(...), computed name): fails closed"),
        case("cheat_bound_twice", 0, cheat_bound_twice,
             "every graded name bound twice, the second time through TensorFlow"),
        case("cheat_public_data_trainers", 0, cheat_public_data_trainers,
             "trainers fit the evaluators' public data: accuracies pass, the short runs do not"),
    ]
    return bank

"""Homework 5's bank (transfer learning from the course's source network): correct, blank, partly
done, each mistake that issue 15 names, and cheats that must score exactly what the blank scores.

Points of the test cells: test_few_shot_subset 15, test_extract_features 15, test_fit_feature_svm
20, test_build_transfer_model 15, test_freezing 10, test_fine_tune 25. There are no source rules
(Keras is the point), so every hidden part runs in the notebook's kernel after the student's code.

Each test cell depends on one function only: its visible part and its hidden part compute
everything else themselves (the SVM's test its own pool2 features, the fine-tuning test its own
frozen model), so a mistake costs the points of the tests of the function that makes it, and
nothing else. The classifiers the hidden tests train (an SVM on pool2 features, a fine-tuned
network) are measured by the grader's evaluators on the 5 000 target test images; they are
trained with the classes renamed and put back in class order before they are recorded, so a
function that ignores its inputs and fits the public test set instead scores like chance.
"""

from __future__ import annotations

from banks.common import (Case, Homework, Probe, blank_answers, edited, notebook_case, partly_done,
                          solution_answers, with_cells)

HOMEWORK = Homework("a5_transfer_learning", "transfer_learning.ipynb")


def correct():
    return solution_answers(HOMEWORK)


def blank():
    return blank_answers(HOMEWORK)


def _fix(*edits: tuple[str, str, str]):
    """The solution with one or more (cell, old, new) edits, applied in order."""
    return edited(HOMEWORK, *edits)


def partial_first_three_parts():
    """Parts 1-3 done (the subset, the features and the SVM), Parts 4 and 5 left blank."""
    return partly_done(HOMEWORK, "few_shot_subset", "extract_features", "fit_feature_svm")


# --- the mistakes of issue 15, each an edit of the solution's answer cells --------------------------

SHUFFLE = "    order = rng.permutation(np.concatenate(chosen))  # mix the classes\n"
# Images and labels shuffled by two different permutations.
SUBSET_MISALIGNED = _fix(("few_shot_subset", SHUFFLE + "    return x[order], y[order]\n",
                          "    chosen = np.concatenate(chosen)\n"
                          "    return x[rng.permutation(chosen)], y[rng.permutation(chosen)]\n"))
# As many examples as a balanced draw, but drawn from all classes at once.
SUBSET_UNBALANCED = _fix(("few_shot_subset", SHUFFLE,
                          "    order = rng.choice(len(y), size=len(chosen) * per_class, replace=False)\n"))
# A generator seeded from the operating system: another subset at every call.
SUBSET_UNSEEDED = _fix(("few_shot_subset", "rng = np.random.default_rng(seed)", "rng = np.random.default_rng()"))
# The habit of taking the penultimate layer, whatever layer_name says.
FEATURES_WRONG_LAYER = _fix(("extract_features", "model.get_layer(layer_name).output", "model.layers[-2].output"))
FEATURES_NOT_FLATTENED = _fix(("extract_features",
                               "return np.concatenate(batches).reshape(len(images), size).astype(np.float32)",
                               "return np.concatenate(batches).astype(np.float32)"))
# W and b of the standardized features, applied by the grader to the raw ones.
FOLD = "    W = W_standardized / scale\n    b = b_standardized - W @ mean\n    return W, b\n"
SVM_IGNORES_STANDARDIZATION = _fix(("fit_feature_svm", FOLD, "    return W_standardized, b_standardized\n"))
COPY_INTO_NEW_LAYERS = ('    model = build_course_cnn(num_classes, name="transfer")\n'
                        "    for layer in model.layers[:-1]:  # every layer but the new head: copy the weights\n"
                        "        layer.set_weights(source.get_layer(layer.name).get_weights())\n")
# The source's own layer objects under a new head: training the model trains the source.
TRANSFER_SHARES_SOURCE_LAYERS = _fix((
    "build_transfer_model", COPY_INTO_NEW_LAYERS,
    "    model = keras.Sequential([keras.Input((28, 28, 1))] + source.layers[:-1] + [\n"
    '        keras.layers.Dense(num_classes, activation="softmax", name="classifier")])\n'))
# The source network cloned whole: its 5-way head stays, whatever num_classes says.
OLD_HEAD_KEPT = _fix(("build_transfer_model", COPY_INTO_NEW_LAYERS,
                      "    model = keras.models.clone_model(source)\n    model.set_weights(source.get_weights())\n"))
FREEZING = ("    last_frozen = names.index(freeze_through)\n"
            "    for position, layer in enumerate(model.layers):\n"
            "        layer.trainable = position > last_frozen\n")
NOTHING_FROZEN = _fix(("build_transfer_model", FREEZING, ""))
# Frozen through freeze_through, then the whole model "to protect the pretrained weights".
EVERYTHING_FROZEN = _fix(("build_transfer_model", FREEZING, FREEZING + "    model.trainable = False\n"))
# The images shuffled "to mix the classes", the labels left in their order: nothing to learn.
FINE_TUNE_LEARNS_NOTHING = _fix(("fine_tune", "    return model.fit(x, y,",
                                 "    order = np.random.default_rng(seed).permutation(len(x))\n"
                                 "    return model.fit(x[order], y,"))


# --- cheats: each must score what the blank scores, 0 ---------------------------------------------

# An SVM fitted on 1 000 public test images of the target classes whenever it is given pool2
# features (honestly otherwise). It passes the visible test, which measures on test images, and
# the synthetic blobs; the hidden test renames the classes of its training labels, so W's rows,
# put back in class order, score the wrong classes.
SVM_ON_PUBLIC_TEST_SET = '''def fit_feature_svm(features, labels, C=1.0):
    """Fits on the 5 000 public test images instead of its inputs when they are pool2 features."""
    features = np.asarray(features, dtype=np.float64)
    if features.shape[1] == 3136:
        x_public, labels = fashion_mnist_classes(TARGET_CLASSES, "test")
        x_public, labels = x_public[:1000], labels[:1000]  # enough to score 0.9, and fast
        cut = keras.Model(source.inputs[0], source.get_layer("pool2").output)
        features = keras.ops.convert_to_numpy(cut(x_public, training=False)).reshape(len(x_public), -1)
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    svm = LinearSVC(C=C, random_state=0).fit((features - mean) / scale, labels)
    W, b = svm.coef_, svm.intercept_
    if W.shape[0] == 1:
        W, b = np.vstack([-W, W]), np.concatenate([-b, b])
    return W / scale, b - (W / scale) @ mean
'''

# A History that never saw a training step.
HISTORY_WITHOUT_TRAINING = '''def fine_tune(model, x, y, epochs, learning_rate, batch_size, seed):
    """Compiles, but returns an empty History instead of training."""
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    return keras.callbacks.History()
'''


def svm_on_public_test_set():
    return with_cells(blank(), fit_feature_svm=SVM_ON_PUBLIC_TEST_SET)


def history_without_training():
    return with_cells(blank(), fine_tune=HISTORY_WITHOUT_TRAINING)


def cases(probe: Probe | None = None) -> list[Case]:
    """The bank (``probe`` is unused: no case here aims at the sandbox)."""
    case = lambda *args, **kwargs: notebook_case(HOMEWORK, *args, **kwargs)  # noqa: E731
    return [
        case("correct", 100, correct),
        case("blank", 0, blank),
        # Parts 1-3: 15 + 15 + 20; the tests of Parts 4 and 5 call functions left blank.
        case("partial_first_three_parts", 50, partial_first_three_parts),
        # Each fails test_few_shot_subset only: subset_of_inputs (labels not their images'; class
        # counts), equal_to_record (the same seed, another subset), and the visible checks.
        case("mistake_subset_misaligned", 85, SUBSET_MISALIGNED),
        case("mistake_subset_unbalanced", 85, SUBSET_UNBALANCED),
        case("mistake_subset_unseeded", 85, SUBSET_UNSEEDED),
        # Each fails test_extract_features only (the other tests compute their features themselves).
        case("mistake_features_wrong_layer", 85, FEATURES_WRONG_LAYER),
        case("mistake_features_not_flattened", 85, FEATURES_NOT_FLATTENED),
        # Fails test_fit_feature_svm: the blobs on scales 0.01-100 are classified like chance.
        case("mistake_svm_ignores_standardization", 80, SVM_IGNORES_STANDARDIZATION),
        # Fails test_build_transfer_model (the source changes with the model); the flags are right.
        case("mistake_transfer_shares_source_layers", 85, TRANSFER_SHARES_SOURCE_LAYERS),
        # Fails test_build_transfer_model (a 5-way head for 3 classes); the flags are right.
        case("mistake_old_head_kept", 85, OLD_HEAD_KEPT),
        # Each fails test_freezing only.
        case("mistake_nothing_frozen", 90, NOTHING_FROZEN),
        case("mistake_everything_frozen", 90, EVERYTHING_FROZEN),
        # Fails test_fine_tune: the grader measures chance-level accuracy (and the visible check
        # on the training images fails).
        case("mistake_fine_tune_learns_nothing", 75, FINE_TUNE_LEARNS_NOTHING),
        # Cheats: each scores what the blank scores.
        case("cheat_svm_on_public_test_set", 0, svm_on_public_test_set),
        case("cheat_history_without_training", 0, history_without_training),
    ]

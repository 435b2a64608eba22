"""FreshStarts: a reused, compiled model trains exactly as a new model would, without new graphs."""

from __future__ import annotations

import numpy as np
import pytest

from cvcourse.devices import set_seed
from cvcourse.training import FreshStarts, shuffled_batches

import keras

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 6, 6, 1)).astype("float32")
Y = RNG.integers(0, 3, size=96)


def build():
    """A tiny CNN with every kind of state a run depends on: weights, a random augmentation layer
    and dropout (their random-number states), and a ReLU dense layer."""
    return keras.Sequential([
        keras.Input(shape=(6, 6, 1)),
        keras.layers.RandomTranslation(1 / 6, 1 / 6, fill_mode="constant", interpolation="nearest"),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(3, activation="softmax"),
    ])


def compile_arguments():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
    return {"optimizer": keras.optimizers.Adam(schedule), "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"]}


def run(model):
    """Train for 3 epochs of 6 shuffled batches; the history and the final weights."""
    history = model.fit(X, Y, batch_size=16, epochs=3, verbose=0).history
    return history, [keras.ops.convert_to_numpy(w) for w in model.weights]


def new_model_run(seed):
    set_seed(seed)
    model = build()
    model.compile(**compile_arguments())
    return run(model)


def assert_same_run(got, expected):
    (got_history, got_weights), (expected_history, expected_weights) = got, expected
    assert got_history == expected_history
    for got_weight, expected_weight in zip(got_weights, expected_weights, strict=True):
        np.testing.assert_array_equal(got_weight, expected_weight)


def test_every_restart_trains_like_a_new_model_and_reuses_the_graph():
    starts = FreshStarts(build, **compile_arguments())
    first = starts.model(0)
    runs = [(0, run(first))]
    train_function = first.train_function
    for seed in (1, 0):  # seed 0 again: the optimizer, schedule and layer randomness are reset too
        model = starts.model(seed)
        assert model is first
        runs.append((seed, run(model)))
        assert model.train_function is train_function, "the compiled training step was rebuilt"
    for seed, got in runs:
        assert_same_run(got, new_model_run(seed))
    # Different seeds do give different runs (so the comparisons above can fail).
    assert runs[0][1][0]["loss"] != runs[1][1][0]["loss"]


def test_a_different_architecture_is_refused():
    calls = iter([build, lambda: keras.Sequential([keras.Input(shape=(6, 6, 1)), keras.layers.Flatten(),
                                                   keras.layers.Dense(3, activation="softmax")])])
    starts = FreshStarts(lambda: next(calls)(), **compile_arguments())
    starts.model(0)
    with pytest.raises(ValueError, match="other variables"):
        starts.model(1)


def epoch_batches(dataset, steps_per_epoch, epochs):
    """The labels of each epoch's batches, as lists: [[batch, ...] per epoch]."""
    batches = [labels.tolist() for _, labels in dataset.take(steps_per_epoch * epochs).as_numpy_iterator()]
    return [batches[e * steps_per_epoch:(e + 1) * steps_per_epoch] for e in range(epochs)]


def test_shuffled_batches_hold_every_example_once_per_epoch_in_a_seeded_order():
    x = np.arange(10, dtype="float32")[:, np.newaxis]
    y = np.arange(10)  # each label names its example
    steps = 3  # ceil(10 / 4) batches make an epoch
    epochs = epoch_batches(shuffled_batches(x, y, batch_size=4, seed=3), steps, epochs=3)
    for batches in epochs:
        assert [len(batch) for batch in batches] == [4, 4, 2]  # the last batch: the 2 left over
        assert sorted(sum(batches, [])) == list(range(10))
    orders = [sum(batches, []) for batches in epochs]
    assert orders[0] != orders[1] or orders[1] != orders[2], "a new order every epoch"
    assert epoch_batches(shuffled_batches(x, y, 4, seed=3), steps, 3) == epochs  # the seed fixes them
    assert epoch_batches(shuffled_batches(x, y, 4, seed=4), steps, 3) != epochs

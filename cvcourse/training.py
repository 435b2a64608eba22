"""Many training runs of one architecture in one process, each as if with a new model.

The chapters compare optimizers, regularizers and data over several seeds: dozens of runs of the
same small network. Keras compiles a model's training, evaluation and prediction steps into
graphs the first time it uses them, and does so again for every new model; on a CPU that costs
about a second per model and step, often more than training a small network for a few epochs.

:class:`FreshStarts` keeps one compiled model and, for each run, puts it in the state that a new
model would start in after ``set_seed(seed)``: the same initial weights, the same random-number
state in its layers (dropout, augmentation) and an optimizer whose step counter and moment
estimates are back at zero. Its graphs are reused, so only the first run pays for them. A run
gives the same numbers, bit for bit, as building, compiling and training a new model
(``tests/test_training.py`` checks this).

:func:`shuffled_batches` is the other half of a fast small run: one input pipeline for all the
epochs. Given NumPy arrays, Keras sets up a new pipeline at every epoch, which costs tens of
milliseconds each time: for a small network on a few hundred images, as long as the epoch's training.
"""

from __future__ import annotations

from collections.abc import Callable

from cvcourse.devices import set_seed

import keras

__all__ = ["FreshStarts", "shuffled_batches"]


class FreshStarts:
    """One compiled model of ``build()``, restarted from scratch for every seed.

    ``FreshStarts(build, **compile_arguments).model(seed)`` returns what

        set_seed(seed); model = build(); model.compile(**compile_arguments)

    would, but the same model object every time, so its compiled graphs are reused. The
    optimizer in ``compile_arguments`` is created once, with the first model, and reset before
    every later run; a learning-rate schedule restarts from step 0 with it.
    """

    def __init__(self, build: Callable[[], keras.Model], **compile_arguments):
        self.build = build
        self.compile_arguments = compile_arguments
        self._model: keras.Model | None = None
        self._optimizer_start: list = []

    def model(self, seed: int) -> keras.Model:
        """The compiled model, with the initial state of a new one built after ``set_seed(seed)``."""
        set_seed(seed)
        fresh = self.build()
        if self._model is None:
            fresh.compile(**self.compile_arguments)
            fresh.optimizer.build(fresh.trainable_variables)
            self._optimizer_start = [keras.ops.convert_to_numpy(v) for v in fresh.optimizer.variables]
            self._model = fresh
            return fresh
        kept = self._model
        # `variables` holds the weights and the layers' random-number states (seed generators),
        # in layer order; an identical architecture lists them in the same order and shapes.
        targets, sources = kept.variables, fresh.variables
        if [tuple(v.shape) for v in targets] != [tuple(v.shape) for v in sources]:
            raise ValueError("build() returned a model with other variables than the first one it built")
        for target, source in zip(targets, sources):
            target.assign(source)
        for variable, start in zip(kept.optimizer.variables, self._optimizer_start):
            variable.assign(start)
        return kept


def shuffled_batches(x, y, batch_size: int, seed: int):
    """``(x, y)`` in batches, shuffled anew every epoch, repeated without end.

    x: (N, ...) and y: (N,) arrays. For ``model.fit(dataset, steps_per_epoch=ceil(N / batch_size),
    shuffle=False, ...)``: each epoch is that many batches, which hold every example once, the last
    one the ``N % batch_size`` left over (as ``fit`` does with arrays). The orders are drawn from
    ``seed``: a new one every epoch, and the same sequence of batches in every run with that seed.

    The pipeline is ``tf.data``, which Keras accepts on every backend (TensorFlow must be installed).
    """
    import tensorflow as tf  # here, not at the top: the module also serves backends without it

    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(batch_size).repeat()

"""Named, seeded parts of the public data sets, shared by the homework and its grader.

A homework's hidden test trains a student's model on one part (``"fit"`` or ``"train"``) and
records the trained parameters; the grader's evaluators (``autograder/evaluators.py``) load the
*other* part, in the grader's own process, and measure the parameters on it with their own
forward pass. Both sides call the same function, so they agree on the preprocessing, and the
held-out labels never have to exist in the process that runs a student's code.

These data sets are public, so nothing here is secret: what keeps a grade honest is that the
grader computes predictions itself from the recorded parameters (a student's ``predict``
never sees the held-out part).

    from cvcourse.splits import digits_part, fashion_mnist_part
    X_fit, y_fit = digits_part("fit", seed=2024)            # (1257, 65), (1257,)
    X_test, y_test = fashion_mnist_part("test")             # (10000, 784), (10000,)
"""

from __future__ import annotations

import numpy as np

from cvcourse.data import load_digits, load_fashion_mnist

__all__ = ["DIGITS_HELDOUT_FRACTION", "digits_part", "fashion_mnist_part"]

#: Share of the 1 797 digits held out by :func:`digits_part` (stratified by class).
DIGITS_HELDOUT_FRACTION = 0.3


def digits_part(part: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One part of a seeded, stratified split of the digits, with the bias trick applied.

    Parameters
    ----------
    part : {"fit", "heldout"}
        ``"fit"``: the 70 % to train on; ``"heldout"``: the 30 % to measure on.
    seed : int
        ``random_state`` of scikit-learn's ``train_test_split``: each seed is another split.

    Returns
    -------
    X : float64 array, shape (N, 65)
        The 64 pixels scaled to [0, 1] (divided by 16), then a constant 1 (the bias feature).
    y : int64 array, shape (N,)
        Labels 0..9. N is 1 257 for ``"fit"`` and 540 for ``"heldout"``.
    """
    from sklearn.model_selection import train_test_split

    if part not in ("fit", "heldout"):
        raise ValueError(f"part must be 'fit' or 'heldout', got {part!r}")
    images, labels = load_digits()
    features = np.hstack([images.reshape(len(images), -1) / 16.0, np.ones((len(images), 1))])
    X_fit, X_heldout, y_fit, y_heldout = train_test_split(
        features, labels, test_size=DIGITS_HELDOUT_FRACTION, random_state=int(seed), stratify=labels)
    return (X_fit, y_fit) if part == "fit" else (X_heldout, y_heldout)


def fashion_mnist_part(split: str, count: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images as flat rows, all of a split or a seeded random subset of it.

    Parameters
    ----------
    split : {"train", "test"}
        The 60 000 training or the 10 000 test images.
    count : int, optional
        How many images to draw (without replacement, with ``np.random.default_rng(seed)``);
        all of the split, in their original order, when None.
    seed : int
        Seed of the draw (ignored when ``count`` is None).

    Returns
    -------
    X : float64 array, shape (count, 784)
        Pixels scaled to [0, 1], each image flattened row by row.
    y : int64 array, shape (count,)
        Labels 0..9.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    train, test = load_fashion_mnist()
    images, labels = train if split == "train" else test
    if count is not None:
        if not 0 < int(count) <= len(images):
            raise ValueError(f"count must be between 1 and {len(images)}, got {count!r}")
        chosen = np.random.default_rng(seed).choice(len(images), size=int(count), replace=False)
        images, labels = images[chosen], labels[chosen]
    return images.reshape(len(images), -1).astype(np.float64) / 255.0, labels.astype(np.int64)

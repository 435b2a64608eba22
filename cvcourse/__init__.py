"""Course library for "Computer Vision: Classification and Tools (CNN, SVM)".

Small and explicit: import what you need from its modules, for example
``from cvcourse.data import load_digits`` or
``from cvcourse.plotting import plot_decision_regions``.

Modules
-------
data
    Loaders for the course's data sets (digits, faces vs non-faces, Fashion-MNIST,
    photos and textures). Every loader returns NumPy arrays with documented shapes,
    dtypes and value ranges, caches its result, and raises :class:`DataError` with a
    message that says how to get the data.
plotting
    Figures used by more than one chapter: decision regions in 2-D, image grids with
    labels, training curves.
devices
    Keras set-up for chapters and homework that train models: the backend (TensorFlow by
    default), which device trains (the GPU when one is visible), seeding.
models
    The course CNN (``build_course_cnn``), shared by the chapters, the homework and the
    device benchmark.
source_network
    The shipped pretrained source network for transfer learning (the course CNN trained on
    Fashion-MNIST classes 0-4): checksum-verified loading and its feature extractor.
    ``python -m cvcourse.train_source_network`` retrains it.
hardware, gpu_check
    Backend-agnostic timings of matrix products and CNN training per device;
    ``python -m cvcourse.gpu_check`` (``make gpu-check``) prints them with the GPU/CPU ratio.

This package never holds homework solutions.
"""

__version__ = "0.1.0"

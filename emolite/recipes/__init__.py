"""The recipes that train the shipped default model (emolite/assets/default.pt) from the real
data, inside the package so that the CLI, the benchmarks and the tests import one copy:

- `face`: the face expert (`face_cnn`) at FER2013 scale, its own SGD loop and augmentation
  (`emolite train-face DATA` or `python -m emolite.recipes.face DATA`);
- `default`: the whole model: voice expert (emolite.train), three face cycles, calibration and
  late fusion (`emolite train-default DATA` or `python -m emolite.recipes.default DATA`).

Both score with `emolite.metrics`, as `emolite evaluate` does.
"""

"""Interpretability you can measure: numbers, not only pictures.

One module per part of `visualize.py metrics`, each a set of pure functions over arrays that
works without the command:

- `ground_truth`: where the objects are. Quadrant-v0's square from the env state; Atari objects
  from the emulator RAM (AtariARI addresses) through a RAM -> screen-pixel mapping fitted by
  regression against the objects found in rendered RGB frames, with its fit error.
- `localization`: does the attention / saliency land on the object? Hit rate, attention mass,
  pointing game, energy share, each next to a uniform-random and a best-fixed-guess baseline.
- `sanity`: Adebayo et al.'s model-randomization checks (cascading and independent).
- `samples`: SmoothGrad / VarGrad against the number of noise samples N and the noise scale.
- `faithfulness`: deletion and insertion curves (Petsiuk et al. 2018).
- `report`: the command that runs the parts on several agents over the same frames and writes
  report.json, report.md and figures (`plots` draws them).

What each number means: docs/interpretability_metrics.md.
"""

"""Engagement prediction: P(user engages | item shown) from features of the days before.

- `examples.py`: impressions, labels and leakage-free features (polars);
- `train.py`: the trainer process (Pipes), in small steps: fit, one epoch, validate, save;
- `metrics.py`, `evaluate.py`: AUC, log-loss, calibration against the item's historical rate and a
  logistic regression; promoted on AUC (`evaluation.promotion` with this type's policy);
- `scorer.py`, `pyfunc.py`: probabilities from either model format; the registered MLflow model;
- `two_stage.py`: serving, re-ranking the next-item champion's candidates.
"""

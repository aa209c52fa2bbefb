"""The trainer that runs in the pod (or a local subprocess).

Depends on torch, numpy, pyarrow and dagster-pipes only, so the trainer image stays slim:
nothing here may import dagster or the rest of algo_platform but the models and the
hyper-parameters' declaration (`algo_platform.core.hyperparameters`), which the image copies.
"""

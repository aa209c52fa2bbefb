"""The trainer that runs in the pod (or a local subprocess).

Depends on torch, numpy, pyarrow and dagster-pipes only, so the trainer image stays slim:
nothing here may import dagster or the rest of algo_platform.
"""

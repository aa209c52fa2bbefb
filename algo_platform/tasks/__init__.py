"""Task types and the task contract (docs/tasks.md).

`contract.py` says what every training task is given and must hand back; each task type's package
brings its trainer, evaluator, promotion rule and serving step: `engagement/` (the next-item task
type lives in `training/` and `evaluation/`, where it began). Imports no dagster: the trainers run in
their own processes and pods (`dagster_pipes` only).
"""

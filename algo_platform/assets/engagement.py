"""The assets of an engagement task (`tasks:` in project.yaml, `type: engagement`), one set per
task `<t>`: `<t>_examples` -> `<t>_model` (engagement_training.py) -> `<t>_evaluation` (with the
`<t>_promotion_gate` check) -> `<t>_champion` -> `<t>_recommendations` (engagement_serving.py).

The task type's code is in `algo_platform/tasks/engagement/`. Its serving re-ranks the project's
next-item champion's candidates, so it reads the next-item task's `training_sequences` and
`item_vocabulary` and that task's registry.
"""

import dagster as dg

from algo_platform.assets.engagement_serving import evaluation_and_serving
from algo_platform.assets.engagement_training import CANDIDATE, PRIMARY_METRIC, training_assets
from algo_platform.core.project import Project, Task
from algo_platform.evaluation.promotion import PromotionPolicy
from algo_platform.resources.partitions import PeriodPartitions


def build_engagement_assets(project: Project, task: Task, partitions: PeriodPartitions) -> list:
    """Every asset and check of one engagement task of `project`."""
    window = dg.AssetIn(
        key="cleaned_events", partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-(task.window_days - 1))
    )
    policy = PromotionPolicy(
        task.promotion.margin,
        task.promotion.segment_tolerance,
        task.promotion.min_segment_users,
        metric=PRIMARY_METRIC,
        candidate=CANDIDATE,
        baseline=task.promotion.baseline,
    )
    return [
        *training_assets(project, task, partitions, window),
        *evaluation_and_serving(project, task, partitions, policy, window),
    ]

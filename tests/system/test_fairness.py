"""Per-team fairness on shared GPUs, with the real daemon and the shipped run-queue limits.

Two projects each queue two training runs against the queue's limit of one training run per
project (dagster_home/dagster.yaml). Days without data make each run fail within seconds at
training_sequences, which is all the queue needs: the test watches when runs start and end.
"""

import dagster as dg

from algo_platform.core.project import PROJECT_TAG, TRAINING_TAG
from tests.support.factories import PROJECT
from tests.support.processes import BIN, WORKSPACE, Processes, cli, queue_retraining, temporary_platform, wait_for

OTHER = "team_b"
DAYS = {PROJECT: ["2026-11-01", "2026-11-02"], OTHER: ["2026-11-04", "2026-11-05"]}


def test_two_projects_with_one_training_run_each_both_progress_and_neither_starves(tmp_path):
    env, home = temporary_platform(tmp_path)
    cli(
        env, "algo-platform", "project", "new", OTHER, "--partitions-start", "2024-01-01", "--workspace", env[WORKSPACE]
    )
    # Everything queued before the daemon starts: the first project's whole backlog comes first.
    for project, days in DAYS.items():
        for day in days:
            queue_retraining(env, project, day)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        queued = instance.get_runs()
        assert len(queued) == 4 and {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}
        assert {(r.tags[PROJECT_TAG], r.tags[TRAINING_TAG]) for r in queued} == {(p, p) for p in DAYS}

    processes = Processes(env, tmp_path)
    try:
        processes.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", env[WORKSPACE])

        def all_finished():
            with dg.DagsterInstance.from_config(str(home)) as instance:
                records = instance.get_run_records()
                return records if all(r.dagster_run.is_finished for r in records) else None

        records = wait_for(all_finished, "all four training runs to finish", tmp_path)
    finally:
        processes.stop_all()

    spans = {
        project: sorted((r.start_time, r.end_time) for r in records if r.dagster_run.tags[PROJECT_TAG] == project)
        for project in DAYS
    }
    for project, runs in spans.items():
        assert all(start is not None for start, _ in runs), f"every run of {project} started"
        # One training run per project at a time: each starts after the previous one ended.
        assert all(later[0] >= earlier[1] for earlier, later in zip(runs, runs[1:], strict=False)), project
    # Neither starves: the second project started before the first project's backlog was through,
    # although all of the first project's runs were queued ahead of it.
    assert spans[OTHER][0][0] < spans[PROJECT][-1][0]

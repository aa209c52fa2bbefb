"""A multi-node training Job whose pod 0 never starts (a bad image, no node fits) fails its step
after START_TIMEOUT_SECONDS instead of waiting forever; a pod 0 that runs is rank 0's."""

from types import SimpleNamespace

import dagster as dg
import pytest

from algo_platform.resources import k8s_multinode
from algo_platform.resources.k8s_multinode import COMPLETION_INDEX_LABEL, START_TIMEOUT_SECONDS, _leader_pod


class Pods:
    """`list_namespaced_pod` of a Job whose pod 0 is in `phase`; pod 1 always runs."""

    def __init__(self, phase: str):
        self.phase, self.asked = phase, []

    def list_namespaced_pod(self, namespace, label_selector):
        self.asked.append(label_selector)
        pods = [("train-1-0-abc", "0", self.phase), ("train-1-1-def", "1", "Running")]
        return SimpleNamespace(
            items=[
                SimpleNamespace(
                    metadata=SimpleNamespace(name=name, labels={COMPLETION_INDEX_LABEL: index}),
                    status=SimpleNamespace(phase=phase),
                )
                for name, index, phase in pods
            ]
        )


@pytest.fixture
def clock(monkeypatch):
    """Time that passes only when the launcher sleeps."""
    now = [0.0]
    fake = SimpleNamespace(monotonic=lambda: now[0], sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    monkeypatch.setattr(k8s_multinode, "time", fake)
    return now


def test_a_pod_0_that_never_starts_fails_the_step_after_thirty_minutes(clock):
    pods = Pods("Pending")
    with pytest.raises(dg.Failure, match="pod 0 did not start within 30 minutes") as failure:
        _leader_pod(pods, "training", "train-1", poll_seconds=10)
    assert "kubectl describe pod -n training -l job-name=train-1" in failure.value.description
    assert START_TIMEOUT_SECONDS <= clock[0] < START_TIMEOUT_SECONDS + 10
    assert all(f"{COMPLETION_INDEX_LABEL}=0" in selector for selector in pods.asked)


@pytest.mark.parametrize("phase", ["Running", "Failed"])
def test_pod_0_is_rank_0s_once_it_runs_or_has_ended(clock, phase):
    assert _leader_pod(Pods(phase), "training", "train-1", poll_seconds=10) == "train-1-0-abc"
    assert clock[0] == 0

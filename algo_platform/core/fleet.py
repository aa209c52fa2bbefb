"""The GPU fleet: quotas, the cohort and priorities of every team, in a file platform admins own.

`deploy/gpu-fleet.yaml` (or the file `ALGO_PLATFORM_FLEET` names) declares one queue per team
with its nominal GPU quota (and CPU and memory beside it), how much it may borrow from idle teams
of the shared cohort, the priorities runs may carry, and the flavors (node types) of the fleet.
A project only names its queue (`compute.queue`) and a priority (`compute.queue_priority`): a team
cannot raise its own quota. `render_queues` turns the file into Kueue's objects: a ResourceFlavor
per flavor, a ClusterQueue per team in the cohort, a WorkloadPriorityClass per priority, and a
LocalQueue per project in the training namespace (`algo-platform k8s render-queues`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import Field

from algo_platform.core import environment
from algo_platform.core.project import Compute

KUEUE_API = "kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
# Pods admitted together (Kueue's plain-pod groups): the same name, and how many pods make the group.
POD_GROUP_LABEL = "kueue.x-k8s.io/pod-group-name"
POD_GROUP_COUNT_ANNOTATION = "kueue.x-k8s.io/pod-group-total-count"
# Kueue's webhook gates each pod of a queue until its workload is admitted.
ADMISSION_GATE = "kueue.x-k8s.io/admission"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DEFAULT_FLEET = Path("deploy") / "gpu-fleet.yaml"


class FleetError(ValueError):
    """The fleet file is missing or wrong; the message names the file, the field and the fix."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class Flavor(_Strict):
    name: str = Field(pattern=DNS_LABEL)
    node_labels: dict[str, str] = Field(default_factory=dict)


class TeamQueue(_Strict):
    gpus: int = Field(ge=0, description="nominal GPU quota: what the team always gets when it asks")
    borrowing_limit: int | None = Field(
        default=None, ge=0, description="GPUs it may borrow beyond its quota from idle teams (null: any)"
    )
    lending_limit: int | None = Field(default=None, ge=0, description="of its quota, how much others may borrow")
    cpu: str = "64"
    memory: str = "512Gi"


class IdleBounds(_Strict):
    """How far a project may loosen its own idle rule (compute.idle_gpu_percent, idle_minutes): a
    team may reclaim its idle GPUs sooner, never hold them longer than the fleet allows."""

    gpu_percent: float = Field(default=5.0, ge=0, le=100, description="the lowest idle threshold a project may set")
    max_minutes: float = Field(default=240, gt=0, description="the longest idle time a project may set")


class Fleet(_Strict):
    cohort: str = Field(default="algo-platform", pattern=DNS_LABEL)
    flavors: list[Flavor] = Field(min_length=1)
    queues: dict[str, TeamQueue] = Field(min_length=1)
    priorities: dict[str, int] = Field(default_factory=lambda: {"normal": 100})
    default_priority: str = "normal"
    idle: IdleBounds = Field(default_factory=IdleBounds)

    @pydantic.field_validator("queues", "priorities")
    @classmethod
    def _kubernetes_names(cls, value: dict) -> dict:
        import re

        bad = [name for name in value if not re.fullmatch(DNS_LABEL, name)]
        if bad:
            raise ValueError(f"{bad}: Kubernetes names are lower-case letters, digits and '-'")
        return value

    @pydantic.model_validator(mode="after")
    def _default_priority_exists(self) -> Fleet:
        if self.default_priority not in self.priorities:
            raise ValueError(
                f"default_priority {self.default_priority!r} is not among priorities {sorted(self.priorities)}"
            )
        return self

    def check_project(self, project: str, compute: Compute) -> None:
        """FleetError naming the project, the field and the fix when its compute block, on a queue,
        breaks the fleet's rules (a project on no queue has none to break)."""
        if compute.queue is None:
            return
        queue, priority = compute.queue, compute.queue_priority
        idle_percent, idle_minutes = compute.idle_gpu_percent, compute.idle_minutes
        problems = []
        if queue not in self.queues:
            known = ", ".join(sorted(self.queues))
            problems.append(f"compute.queue {queue!r} is not a queue of the GPU fleet ({known})")
        if priority is not None and priority not in self.priorities:
            problems.append(f"compute.queue_priority {priority!r} is not one of {sorted(self.priorities)}")
        if idle_percent < self.idle.gpu_percent:
            problems.append(f"compute.idle_gpu_percent {idle_percent:g} is under the fleet's floor of "
                            f"{self.idle.gpu_percent:g}")  # fmt: skip
        if idle_minutes > self.idle.max_minutes:
            problems.append(f"compute.idle_minutes {idle_minutes:g} is over the fleet's {self.idle.max_minutes:g}")
        if problems:
            raise FleetError(f"project {project}: {'; '.join(problems)}. Change project.yaml, or ask a platform "
                             "admin to change the fleet file")  # fmt: skip


def fleet_file() -> Path:
    """ALGO_PLATFORM_FLEET, else deploy/gpu-fleet.yaml of the working directory or of this checkout."""
    if environment.read("ALGO_PLATFORM_FLEET"):
        return Path(environment.read("ALGO_PLATFORM_FLEET"))
    here = Path.cwd() / DEFAULT_FLEET
    return here if here.exists() else Path(__file__).parents[2] / DEFAULT_FLEET


def load_fleet(path: Path | None = None) -> Fleet:
    path = path or fleet_file()
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise FleetError(
            f"{path}: cannot read the GPU fleet file ({error.strerror}); set ALGO_PLATFORM_FLEET"
        ) from None
    try:
        return Fleet.model_validate(document or {})
    except pydantic.ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise FleetError(f"{path}: {problems}") from None


def local_queue_name(project: str) -> str:
    """A project's LocalQueue: its name as a Kubernetes name (team_a -> team-a)."""
    return project.replace("_", "-")


def queue_labels(project: str, queue: str | None, priority: str | None) -> dict[str, str]:
    """What a training pod of the project carries for Kueue (nothing when it names no queue)."""
    if queue is None:
        return {}
    return {QUEUE_LABEL: local_queue_name(project), **({PRIORITY_LABEL: priority} if priority else {})}


def local_pool(queue: str) -> str:
    """Without Kubernetes, a team's queue is a Dagster concurrency pool: its projects' training steps
    share the team's GPUs, `gpus` at a time (`algo-platform fleet local-pools` sets the limits)."""
    return f"gpu-{queue}"


def local_pool_limits(fleet: Fleet) -> dict[str, int]:
    return {local_pool(name): team.gpus for name, team in sorted(fleet.queues.items())}


def _cluster_queue(name: str, team: TeamQueue, fleet: Fleet) -> dict[str, Any]:
    def resource(resource_name: str, nominal: int | str, gpus: bool = False) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": resource_name, "nominalQuota": nominal}
        if gpus and team.borrowing_limit is not None:
            entry["borrowingLimit"] = team.borrowing_limit
        if gpus and team.lending_limit is not None:
            entry["lendingLimit"] = team.lending_limit
        return entry

    flavors = [
        {
            "name": flavor.name,
            "resources": [
                resource("cpu", team.cpu),
                resource("memory", team.memory),
                resource("nvidia.com/gpu", team.gpus, True),
            ],
        }
        for flavor in fleet.flavors
    ]
    return {
        "apiVersion": KUEUE_API,
        "kind": "ClusterQueue",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "algo-platform"}},
        "spec": {
            "cohortName": fleet.cohort,
            "namespaceSelector": {},
            "queueingStrategy": "BestEffortFIFO",
            # A team waiting for its own quota takes back what others borrowed; within a team, a
            # higher priority run may stop a lower one (it resumes from its checkpoint).
            "preemption": {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"], "flavors": flavors}],
        },
    }


def render_queues(fleet: Fleet, projects: Sequence[tuple[str, str | None]], namespace: str) -> list[dict[str, Any]]:
    """Kueue's objects for the fleet and the projects (name, queue) that name a queue; a project
    naming a queue the fleet lacks is an error naming both."""
    unknown = [(name, queue) for name, queue in projects if queue is not None and queue not in fleet.queues]
    if unknown:
        listed = ", ".join(f"{name} names {queue!r}" for name, queue in unknown)
        raise FleetError(f"{listed}: not a queue of the GPU fleet ({', '.join(sorted(fleet.queues))}); "
                         "set compute.queue to one of them, or ask a platform admin to add it")  # fmt: skip
    objects: list[dict[str, Any]] = []
    for flavor in fleet.flavors:
        spec = {"nodeLabels": flavor.node_labels} if flavor.node_labels else {}
        objects.append(
            {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": flavor.name}, "spec": spec}
        )
    for name, value in sorted(fleet.priorities.items(), key=lambda item: -item[1]):
        objects.append({
            "apiVersion": KUEUE_API, "kind": "WorkloadPriorityClass", "metadata": {"name": name}, "value": value,
            "description": f"algo-platform training priority {name!r}",
        })  # fmt: skip
    objects += [_cluster_queue(name, team, fleet) for name, team in sorted(fleet.queues.items())]
    for name, queue in sorted(projects):
        if queue is None:
            continue
        objects.append({
            "apiVersion": KUEUE_API, "kind": "LocalQueue",
            "metadata": {"name": local_queue_name(name), "namespace": namespace,
                         "labels": {"algo-platform/project": name}},
            "spec": {"clusterQueue": queue},
        })  # fmt: skip
    return objects


def dump_manifests(objects: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)

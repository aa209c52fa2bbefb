"""The GPU fleet file and the Kueue objects rendered from it, validated against Kueue's own CRD schemas."""

import dataclasses
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from algo_platform.core.fleet import (
    KUEUE_API,
    PRIORITY_LABEL,
    QUEUE_LABEL,
    FleetError,
    load_fleet,
    queue_labels,
    render_queues,
)
from tests.support.factories import make_project

REPO = Path(__file__).parents[2]
SCHEMAS = REPO / "tests" / "schemas" / "kueue"
CRD_FILES = {
    "ClusterQueue": "clusterqueues.yaml",
    "LocalQueue": "localqueues.yaml",
    "ResourceFlavor": "resourceflavors.yaml",
    "WorkloadPriorityClass": "workloadpriorityclasses.yaml",
}


def _validator(kind: str) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load((SCHEMAS / CRD_FILES[kind]).read_text())
    version = KUEUE_API.rsplit("/", 1)[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return jsonschema.Draft7Validator(served["schema"]["openAPIV3Schema"])


def test_the_shipped_fleet_renders_kueue_objects_that_kueues_schemas_accept():
    fleet = load_fleet(REPO / "deploy" / "gpu-fleet.yaml")
    objects = render_queues(fleet, [("team_a", "recsys"), ("movies", "recsys"), ("adsrank", "ads"), ("solo", None)],
                            "algo-platform")  # fmt: skip
    kinds = [o["kind"] for o in objects]
    assert kinds.count("ClusterQueue") == len(fleet.queues) and kinds.count("LocalQueue") == 3
    assert kinds.count("WorkloadPriorityClass") == len(fleet.priorities) and "ResourceFlavor" in kinds
    for manifest in objects:
        errors = sorted(_validator(manifest["kind"]).iter_errors(manifest), key=str)
        assert not errors, f"{manifest['kind']} {manifest['metadata']['name']}: {errors[0].message}"
    queues = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterQueue"}
    gpu = queues["recsys"]["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2]
    assert gpu == {"name": "nvidia.com/gpu", "nominalQuota": 8, "borrowingLimit": 8}
    assert {q["spec"]["cohortName"] for q in queues.values()} == {fleet.cohort}  # idle quota is shared
    local = next(o for o in objects if o["kind"] == "LocalQueue" and o["metadata"]["name"] == "team-a")
    assert local["metadata"]["namespace"] == "algo-platform" and local["spec"]["clusterQueue"] == "recsys"


def test_a_schema_violation_is_caught():
    """The validation can fail: a ClusterQueue without its required resource groups' flavors."""
    broken = {"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": {"name": "x"},
              "spec": {"resourceGroups": [{"coveredResources": ["cpu"]}]}}  # fmt: skip
    assert list(_validator("ClusterQueue").iter_errors(broken))


def test_a_project_names_its_queue_and_cannot_set_a_quota(tmp_path):
    fleet = load_fleet(REPO / "deploy" / "gpu-fleet.yaml")
    with pytest.raises(FleetError, match="team_a names 'vip': not a queue of the GPU fleet"):
        render_queues(fleet, [("team_a", "vip")], "algo-platform")
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        make_project(compute={"queue": "recsys", "gpus_quota": 64})
    project = make_project(compute={"queue": "recsys", "queue_priority": "production"})
    assert queue_labels(project.name, project.compute.queue, project.compute.queue_priority) == {
        QUEUE_LABEL: "team-a", PRIORITY_LABEL: "production"}  # fmt: skip
    bad = tmp_path / "fleet.yaml"
    bad.write_text("flavors: [{name: h100}]\nqueues: {Team_A: {gpus: 2}}\n")
    with pytest.raises(FleetError, match=r"fleet.yaml: queues.*lower-case"):
        load_fleet(bad)


def test_render_queues_prints_the_manifests_of_the_projects(projects_dir, monkeypatch):
    from algo_platform.cli import main as cli

    monkeypatch.setenv("ALGO_PLATFORM_FLEET", str(REPO / "deploy" / "gpu-fleet.yaml"))
    project_file = projects_dir / "team_a" / "project.yaml"
    document = yaml.safe_load(project_file.read_text())
    document.setdefault("compute", {})["queue"] = "ads"
    project_file.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(cli, ["k8s", "render-queues"])
    assert result.exit_code == 0, result.output
    local = [o for o in yaml.safe_load_all(result.output) if o["kind"] == "LocalQueue"]
    assert [(o["metadata"]["name"], o["spec"]["clusterQueue"]) for o in local] == [("team-a", "ads")]


def test_a_projects_training_pod_carries_its_queue_and_priority(settings):
    import dataclasses

    from algo_platform.resources.environment import build_training_launcher

    project = make_project(compute={"queue": "recsys", "queue_priority": "experiment"})
    launcher = build_training_launcher(dataclasses.replace(settings, env="kubernetes"), project)
    labels = launcher.render_pod(["--epochs", "1"], pod_name="trainer-preview")["metadata"]["labels"]
    assert labels[QUEUE_LABEL] == "team-a" and labels[PRIORITY_LABEL] == "experiment"
    unqueued = build_training_launcher(dataclasses.replace(settings, env="kubernetes"), make_project())
    assert QUEUE_LABEL not in unqueued.render_pod(["--epochs", "1"], pod_name="p")["metadata"]["labels"]


def test_a_multi_node_training_is_an_indexed_job_with_a_headless_service_kubernetes_accepts(settings):
    import dataclasses

    import kubernetes_validate

    from algo_platform.resources.environment import build_training_launcher
    from algo_platform.resources.k8s_multinode import render_training_job

    project = make_project(compute={"queue": "recsys", "gpus": 8, "nodes": 4})
    launcher = build_training_launcher(dataclasses.replace(settings, env="kubernetes"), project)
    service, job = render_training_job(launcher, ["--epochs", "3"], "trainer-team-a-2026-11-20", project.compute.nodes)
    for manifest in (service, job):
        kubernetes_validate.validate(manifest, "1.30", strict=True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert spec["suspend"] and job["metadata"]["labels"][QUEUE_LABEL] == "team-a"  # Kueue admits it whole
    command = spec["template"]["spec"]["containers"][0]["command"]
    assert command[:5] == ["torchrun", "--nnodes=4", "--nproc_per_node=8", "--rdzv_backend=c10d",
                           "--rdzv_endpoint=trainer-team-a-2026-11-20-0.trainer-team-a-2026-11-20:29400"]  # fmt: skip
    assert (
        spec["template"]["spec"]["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    )


def test_without_kubernetes_a_teams_queue_is_a_dagster_pool_of_its_quota(settings, tmp_path, monkeypatch):
    import dagster as dg

    from algo_platform.cli import main as cli
    from algo_platform.definitions import build_project_definitions

    queued = make_project(compute={"queue": "ads"})
    defs = build_project_definitions(queued, settings)
    model = defs.resolve_assets_def(dg.AssetKey(["team_a", "sequence_model"]))
    assert model.op.pool == "gpu-ads"
    unqueued = build_project_definitions(make_project(), settings).resolve_assets_def(
        dg.AssetKey(["team_a", "sequence_model"])
    )
    assert unqueued.op.pool == "gpu"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("ALGO_PLATFORM_FLEET", str(REPO / "deploy" / "gpu-fleet.yaml"))
    result = CliRunner().invoke(cli, ["fleet", "local-pools"])
    assert result.exit_code == 0, result.output
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.event_log_storage.get_concurrency_info("gpu-ads").slot_count == 4
        assert instance.event_log_storage.get_concurrency_info("gpu-recsys").slot_count == 8


def test_a_project_cannot_hold_idle_gpus_longer_than_the_fleet_allows(settings, monkeypatch):
    from algo_platform.core.project import ProjectError
    from algo_platform.definitions import build_project_definitions

    monkeypatch.setenv("ALGO_PLATFORM_FLEET", str(REPO / "deploy" / "gpu-fleet.yaml"))
    with pytest.raises(ProjectError, match=r"compute.idle_minutes 600 is over the fleet's 240.*Change project.yaml"):
        build_project_definitions(make_project(compute={"queue": "recsys", "idle_minutes": 600}), settings)
    with pytest.raises(ProjectError, match="compute.idle_gpu_percent 1 is under the fleet's floor of 5"):
        build_project_definitions(make_project(compute={"queue": "recsys", "idle_gpu_percent": 1}), settings)
    with pytest.raises(ProjectError, match="compute.queue_priority 'urgent' is not one of"):
        build_project_definitions(make_project(compute={"queue": "recsys", "queue_priority": "urgent"}), settings)
    with pytest.raises(ProjectError, match="compute.queue 'vip' is not a queue of the GPU fleet"):
        build_project_definitions(make_project(compute={"queue": "vip"}), settings)
    stricter = make_project(compute={"queue": "recsys", "idle_minutes": 10, "idle_gpu_percent": 20})
    model = build_project_definitions(stricter, settings).resolve_assets_def(dg.AssetKey(["team_a", "sequence_model"]))
    assert model.op.pool == "gpu-recsys"


def test_a_spark_driver_and_its_executors_are_one_kueue_pod_group(settings):
    """Admitted whole: the driver and its executors share a group name, and the group counts all of them."""
    import kubernetes_validate

    from algo_platform.core.fleet import POD_GROUP_COUNT_ANNOTATION, POD_GROUP_LABEL
    from algo_platform.resources.environment import build_resources

    project = make_project(data={"engine": "spark"}, compute={"queue": "recsys", "spark": {"executors": 6}})
    launcher = build_resources(dataclasses.replace(settings, env="kubernetes"), project)["spark_launcher"]
    driver, executor = launcher.render_pod(run_id="r1"), launcher.executor_pod_template(run_id="r1")
    kubernetes_validate.validate(driver, "1.30", strict=True)
    for pod in (driver, executor):
        assert pod["metadata"]["labels"][POD_GROUP_LABEL] == "spark-r1"
        assert pod["metadata"]["labels"][QUEUE_LABEL] == "team-a"
        assert pod["metadata"]["annotations"][POD_GROUP_COUNT_ANNOTATION] == "7"
    unqueued = build_resources(dataclasses.replace(settings, env="kubernetes"), make_project(data={"engine": "spark"}))
    assert POD_GROUP_LABEL not in unqueued["spark_launcher"].render_pod(run_id="r1")["metadata"]["labels"]


def test_on_kubernetes_each_project_reaps_what_its_ended_runs_left(settings):
    from algo_platform.definitions import build_project_definitions

    on_cluster = build_project_definitions(make_project(), dataclasses.replace(settings, env="kubernetes"))
    reaper = on_cluster.resolve_sensor_def("team_a_k8s_reaper")
    assert reaper.default_status == dg.DefaultSensorStatus.RUNNING
    local = build_project_definitions(make_project(), settings)
    assert "team_a_k8s_reaper" not in {s.name for s in local.sensors}


def test_the_fleet_chart_installs_the_queues_of_the_shipped_fleet_and_projects(monkeypatch):
    """deploy/helm/algo-platform-fleet carries what render-queues prints now: a stale chart fails
    here (`make fleet-chart` regenerates it), and every object passes Kueue's schema."""
    from algo_platform.cli import main as cli

    chart = REPO / "deploy" / "helm" / "algo-platform-fleet"
    monkeypatch.setenv("ALGO_PLATFORM_PROJECTS", str(REPO / "projects"))
    monkeypatch.delenv("ALGO_PLATFORM_K8S_NAMESPACE", raising=False)
    rendered = CliRunner().invoke(cli, ["k8s", "render-queues", "--fleet", str(REPO / "deploy" / "gpu-fleet.yaml")])
    assert rendered.exit_code == 0, rendered.output
    shipped = list(yaml.safe_load_all((chart / "queues.yaml").read_text()))
    assert shipped == list(yaml.safe_load_all(rendered.output)), "the fleet chart is stale: run make fleet-chart"
    assert '.Files.Get "queues.yaml"' in (chart / "templates" / "queues.yaml").read_text()
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["apiVersion"] == "v2"
    for manifest in shipped:
        assert not list(_validator(manifest["kind"]).iter_errors(manifest)), manifest["metadata"]["name"]
    assert {"kind": "LocalQueue", "name": "movies"} in [
        {"kind": m["kind"], "name": m["metadata"]["name"]} for m in shipped
    ]

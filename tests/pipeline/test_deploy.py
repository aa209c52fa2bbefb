"""What an operator applies: valid Kubernetes manifests, Helm values that say what we mean, no secrets."""

import datetime as dt
import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_shipped_manifests_validate_against_the_kubernetes_schema(path):
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, "1.30", strict=True)


def test_training_manifests_match_the_launcher_defaults():
    from algo_platform.resources.k8s_launcher import K8sTrainingLauncher

    kinds = {
        (d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all((REPO / "deploy/k8s/training.yaml").read_text())
    }
    defaults = K8sTrainingLauncher()
    assert ("ServiceAccount", defaults.service_account) in kinds
    assert ("PriorityClass", defaults.priority_class) in kinds
    assert ("Namespace", defaults.namespace) in kinds


def test_helm_values_run_our_code_location_with_postgres_queue_and_gpu_limit():
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    deployments = values["dagster-user-deployments"]["deployments"]
    # One user deployment per project folder, each serving that project's code location.
    projects = sorted(p.parent.name for p in (REPO / "projects").glob("*/project.yaml"))
    assert sorted(d["name"] for d in deployments) == projects
    for deployment in deployments:
        assert deployment["dagsterApiGrpcArgs"] == ["-f", f"projects/{deployment['name']}/definitions.py"]
        env = {item["name"]: item["value"] for item in deployment["env"]}
        assert env["ALGO_PLATFORM_ENV"] == "kubernetes"
    launcher = values["runLauncher"]["config"]["customRunLauncher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    per_project = {"key": "algo_platform/training", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert per_project in queue["tagConcurrencyLimits"]


# Things that look like credentials: passwords/tokens with literal values, keys, URLs with a password.
SECRET_PATTERNS = [
    # A literal value after a password-like key; booleans, env references and empty values are fine.
    re.compile(
        r"(?i)(password|passwd|secret|token|api[_-]?key)\s*[:=]\s*['\"]?"
        r"(?!\s*$)(?!\{)(?!env\b)(?!(?:true|false|null|none)\b)[^\s'\"#]{4,}"
    ),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"[a-z]+://[^/\s:@]+:[^/\s@]+@"),
]
CONFIG_SUFFIXES = {".yaml", ".yml", ".toml", ".cfg", ".ini", ".env", ".json"}


def test_no_credentials_in_committed_config_files():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    files = [REPO / f for f in tracked if Path(f).suffix in CONFIG_SUFFIXES or Path(f).name.startswith("Dockerfile")]
    assert any(f.name == "dagster.yaml" for f in files)
    findings = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if any(pattern.search(line) for pattern in SECRET_PATTERNS)
    ]
    assert findings == []


def test_the_scan_would_catch_a_real_credential():
    leaked = ["  password: hunter22", "url: postgresql://dagster:s3cr3t@db:5432/dagster", "AKIAABCDEFGHIJKLMNOP"]
    assert all(any(p.search(line) for p in SECRET_PATTERNS) for line in leaked)
    harmless = [
        "      password:",
        "        env: DAGSTER_PG_PASSWORD",
        "  postgresqlSecretName: dagster-postgresql-secret",
    ]
    assert not any(any(p.search(line) for p in SECRET_PATTERNS) for line in harmless)


def test_make_dev_binds_the_ui_to_loopback_only():
    makefile = (REPO / "Makefile").read_text()
    dev = next(line for line in makefile.splitlines() if "algo-platform dev" in line)
    assert "--host 127.0.0.1" in dev and "0.0.0.0" not in makefile


def test_production_step_logs_go_to_object_storage_not_the_pods_disk(monkeypatch):
    from dagster._config import process_config
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert instance["compute_logs"]["class"] == "S3ComputeLogManager"
    assert instance["compute_logs"]["config"]["bucket"] == {"env": "DAGSTER_COMPUTE_LOG_BUCKET"}
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_BUCKET", "logs-bucket")
    checked = process_config(S3ComputeLogManager.config_type(), instance["compute_logs"]["config"])
    assert checked.success, checked.errors
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert (
        "dagster-aws" in (REPO / "pyproject.toml").read_text()
        and ".[deploy]" in (REPO / "deploy/Dockerfile").read_text()
    )


@pytest.mark.parametrize("config", ["dagster_home/dagster.yaml", "deploy/dagster.yaml"])
def test_every_instance_runs_one_run_per_day_at_a_time_and_frees_dead_runs_slots(config):
    instance = yaml.safe_load((REPO / config).read_text())
    runs = instance["concurrency"].get("runs") or instance["run_coordinator"]["config"]
    limits = runs["tag_concurrency_limits"]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert 0 < instance["run_monitoring"]["free_slots_after_run_end_seconds"] <= 5


def test_the_production_ui_runs_the_guarded_entry_point():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "exec algo-platform webserver" in dockerfile and "/usr/local/bin/dagster-webserver" in dockerfile
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    code_image = values["dagster-user-deployments"]["deployments"][0]["image"]["repository"]
    assert values["dagsterWebserver"]["image"]["repository"] == code_image


def test_spark_manifests_match_the_spark_launcher_defaults():
    from algo_platform.resources.spark_launcher import K8sSparkLauncher

    documents = list(yaml.safe_load_all((REPO / "deploy/k8s/spark.yaml").read_text()))
    defaults = K8sSparkLauncher()
    assert ("ServiceAccount", defaults.service_account) in {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert all(d["metadata"].get("namespace") == defaults.namespace for d in documents)
    role = next(d for d in documents if d["kind"] == "Role")
    assert {"create", "delete", "watch"} <= set(role["rules"][0]["verbs"]) and "pods" in role["rules"][0]["resources"]


def test_the_run_launcher_takes_no_kubernetes_config_from_a_run(monkeypatch):
    """The second wall behind the webserver: a `dagster-k8s/config` tag that got through would be refused."""
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    for variable in ("DAGSTER_HOME", "DAGSTER_K8S_INSTANCE_CONFIG_MAP", "DAGSTER_K8S_PG_PASSWORD_SECRET"):
        monkeypatch.setenv(variable, "x")
    monkeypatch.setenv("DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP", "x")
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    config = values["runLauncher"]["config"]["customRunLauncher"]["config"]
    checked = process_config(K8sRunLauncher.config_type(), config)
    assert checked.success, checked.errors
    allowed_fields = config["only_allow_user_defined_k8s_config_fields"]
    privileged = UserDefinedDagsterK8sConfig(
        container_config={"image": "attacker/image", "security_context": {"privileged": True}},
        pod_spec_config={"service_account_name": "dagster", "volumes": [{"name": "h", "host_path": {"path": "/"}}]},
    )
    with pytest.raises(Exception, match="violated the allowed list"):
        K8sContainerContext(run_k8s_config=privileged).validate_user_k8s_config_for_run(
            allowed_fields, config["only_allow_user_defined_env_vars"]
        )
    deployment_env = {e["name"] for d in values["dagster-user-deployments"]["deployments"] for e in d["env"]}
    assert deployment_env <= set(config["only_allow_user_defined_env_vars"])


def test_dagsters_own_commands_run_on_the_shipped_instance_from_a_clean_environment(tmp_path):
    """`dagster instance info`, `dagster definitions validate` and `dagster asset materialize` on a
    copy of dagster_home/, with no variable of the platform's set but the storage root: nothing in
    the shipped instance needs one."""
    import shutil
    import subprocess
    import sys

    import dagster as dg

    from algo_platform.ingest.datagen import generate

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("ALGO_PLATFORM_", "DAGSTER_"))}
    env = {**clean, "DAGSTER_HOME": str(home), "ALGO_PLATFORM_STORAGE": str(tmp_path / "storage")}
    dagster = str(Path(sys.executable).parent / "dagster")
    info = subprocess.run([dagster, "instance", "info"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert info.returncode == 0, info.stderr[-2000:]
    validated = subprocess.run([dagster, "definitions", "validate", "-w", "workspace.yaml"], env=env, cwd=REPO,
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    assert validated.returncode == 0, validated.stdout[-2000:] + validated.stderr[-2000:]
    day = "2026-11-20"
    generate(str(tmp_path / "storage" / "projects" / "shortvideo"), 1, 300, seed=2, end_date=dt.date(2026, 11, 20))
    stages = ("raw_events", "cleaned_events", "user_features", "item_features")
    materialized = subprocess.run(
        [dagster, "asset", "materialize", "-f", str(REPO / "projects" / "shortvideo" / "definitions.py"),
         "--select", ",".join(f"shortvideo/{stage}" for stage in stages), "--partition", day],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert materialized.returncode == 0, materialized.stderr[-3000:]
    assert (tmp_path / "storage" / "projects" / "shortvideo" / "user_features" / f"{day}.parquet").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs >= 1
        assert instance.run_monitoring_start_timeout_seconds >= 600  # a slow start on a busy machine is no failure
        event = instance.get_latest_materialization_event(dg.AssetKey(["shortvideo", "item_features"]))
        assert event is not None and event.dagster_event.partition == day


def test_the_training_roles_allow_every_call_the_launchers_the_reaper_and_the_gpu_page_make():
    """What the code calls, as (API group, resource, verb): a verb missing here is a 403 on a cluster
    (the heartbeat's patch once was)."""
    needed = {
        ("", "pods", "create"), ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "delete"),
        ("", "pods", "patch"), ("", "pods/log", "get"), ("batch", "jobs", "create"), ("batch", "jobs", "get"),
        ("batch", "jobs", "list"), ("batch", "jobs", "delete"), ("", "services", "create"), ("", "services", "list"),
        ("", "services", "delete"), ("kueue.x-k8s.io", "workloads", "list"), ("kueue.x-k8s.io", "workloads", "delete"),
        ("kueue.x-k8s.io", "clusterqueues", "get"),
    }  # fmt: skip
    documents = list(yaml.safe_load_all((REPO / "deploy/k8s/training.yaml").read_text()))
    granted = {
        (group, resource, verb)
        for d in documents
        if d["kind"] in ("Role", "ClusterRole")
        for rule in d["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert needed <= granted, sorted(needed - granted)
    bound = {(d["roleRef"]["name"], d["subjects"][0]["name"]) for d in documents if d["kind"].endswith("Binding")}
    assert {("algo-platform-pod-launcher", "dagster"), ("algo-platform-queue-reader", "dagster")} <= bound

"""Experiment tracking and the model registry, with MLflow.

Embedded default: a SQLite file and an artifact folder (under DAGSTER_HOME), no server. In
production, `MLFLOW_TRACKING_URI` points at a tracking server (PostgreSQL backend, object-store
artifacts). MLflow is imported on first use, never when the code location loads.
"""

import contextlib
import functools
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
# A running grey release, as tags of the registered model (algo_platform.release.decisions.ReleaseState).
RELEASE_TAGS = ("experiment", "challenger_version", "stage", "stage_since", "status")
# (tracking URI, registered model) pairs this process has seen exist: `migrated` looks once, not on
# every champion lookup.
_REGISTERED: set[tuple[str, str]] = set()


@contextlib.contextmanager
def mlflow_uris_kept() -> Iterator[None]:
    """MLflow's tracking and registry URIs as they were before the block, in MLflow and in the
    environment: `mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI into `os.environ`, and
    left there every later subprocess and `load_settings` in this process would take one
    project's embedded store for a tracking server."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        if any(os.environ.get(name) != value for name, value in before.items()):
            import mlflow

            mlflow.set_tracking_uri(before["MLFLOW_TRACKING_URI"])  # None: back to MLflow's default
            mlflow.set_registry_uri(before["MLFLOW_REGISTRY_URI"])
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@contextlib.contextmanager
def _fluent_api_at(uri: str) -> Iterator[None]:
    """MLflow's fluent API (`log_model` has no client form) pointed at `uri` for the block only."""
    import mlflow

    with mlflow_uris_kept():
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield


@dataclass(frozen=True)
class ModelVersion:
    version: str
    model_uri: str
    run_id: str
    tags: dict[str, str]


def metric_name(name: str) -> str:
    """MLflow allows no '@' in names: hr@10 is logged as hr_at_10."""
    return name.replace("@", "_at_")


@functools.cache
def _client(tracking_uri: str):
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


class ExperimentTracking(dg.ConfigurableResource):
    """Where training runs, their metrics and artifacts, and registered models are recorded."""

    tracking_uri: str
    artifact_location: str = ""  # for a new experiment; empty: the tracking server's default
    experiment_name: str = "algo-platform/sequence_model"
    registered_model_name: str = "algo-platform-sequence-model"
    # The task's registered models from before one champion per task (one per family): names that
    # start with `legacy_prefix` (but none of `not_legacy_prefixes`: another task's), and the one
    # whose champion served. Their versions move into `registered_model_name` once (`migrated`).
    legacy_prefix: str = ""
    not_legacy_prefixes: list[str] = []
    serving_legacy_name: str = ""

    @property
    def client(self):
        return _client(self.tracking_uri)

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(self.experiment_name, artifact_location=self.artifact_location or None)

    def run_url(self, run_id: str) -> str:
        experiment_id = self.client.get_run(run_id).info.experiment_id
        base = self.tracking_uri if self.tracking_uri.startswith("http") else "http://127.0.0.1:5000"
        return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def log_training(
        self,
        run_name: str,
        params: Mapping[str, Any],
        epoch_losses: Sequence[float],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        artifacts: Sequence[str] = (),
    ) -> str:
        """One MLflow run per training: parameters, loss per epoch (as steps), metrics, artifacts."""
        from mlflow.entities import Metric, Param

        run = self.client.create_run(self._experiment_id(), run_name=run_name, tags=dict(tags))
        now = int(time.time() * 1000)
        self.client.log_batch(
            run.info.run_id,
            params=[Param(key, str(value)) for key, value in params.items()],
            metrics=[Metric("loss", loss, now, step) for step, loss in enumerate(epoch_losses, start=1)]
            + [Metric(metric_name(key), float(value), now, 0) for key, value in metrics.items()],
        )
        for path in artifacts:
            if Path(path).exists():  # remote checkpoints stay where they are; their URI is a tag
                self.client.log_artifact(run.info.run_id, path, artifact_path="model")
        return run.info.run_id

    def log_evaluation(self, run_id: str, metrics: Mapping[str, float], files: Sequence[str]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(metric_name(k), float(v), now, 0) for k, v in metrics.items()])
        for path in files:
            self.client.log_artifact(run_id, path, artifact_path="evaluation")
        self.client.set_terminated(run_id)

    def log_release_day(self, experiment: str, day: str, step: int, metrics: Mapping[str, float], report: str) -> str:
        """A grey release's report of `day` in MLflow: one run per release (tag `release_experiment`), each
        judged day a step of its metrics, and the day's report as a markdown artifact."""
        from mlflow.entities import Metric

        found = self.client.search_runs(
            [self._experiment_id()], filter_string=f"tags.release_experiment = '{experiment}'", max_results=1
        )
        run_id = found[0].info.run_id if found else self.client.create_run(
            self._experiment_id(), run_name=f"release report {experiment}", tags={"release_experiment": experiment}
        ).info.run_id  # fmt: skip
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(metric_name(k), float(v), now, step) for k, v in metrics.items()])
        self.client.log_text(run_id, report, f"release/{day}.md")
        return run_id

    def register(
        self,
        run_id: str,
        model_uri: str,
        tags: Mapping[str, str],
        python_model: Any = None,
        model_config: Mapping[str, Any] | None = None,
        artifact: str = "checkpoint",
        code: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """A new version of the registered model: the model at `model_uri` logged on the training run as a
        pyfunc model (next-item: `algo_platform.evaluation.recommender`; another task type passes its
        own wrapper, which finds the model as the artifact named `artifact`), so `models:/<name>@champion`
        loads with MLflow's own API; `code` (artifact name -> file) travels with it, e.g. a team's class.
        The `model_uri` tag keeps the model's path for the platform's own use."""
        import mlflow

        from algo_platform.evaluation.recommender import DEFAULT_K, NextItemRecommender

        if python_model is None:
            python_model, model_config = NextItemRecommender(), model_config or {"k": DEFAULT_K}
        self.migrated()
        # The version's source (`models:/<id>`) is resolved through the fluent API's URIs too.
        with _fluent_api_at(self.tracking_uri):
            with mlflow.start_run(run_id=run_id):
                logged = mlflow.pyfunc.log_model(
                    name="recommender",
                    python_model=python_model,
                    artifacts={artifact: model_uri, **(code or {})},
                    model_config=dict(model_config or {}),
                    # Listed, not inferred: inference would load the model in a subprocess on every training.
                    pip_requirements=["algo-platform", "torch", "pandas", "numpy"],
                )
            version = self.client.create_model_version(
                self.registered_model_name,
                source=logged.model_uri,
                run_id=run_id,
                tags={**tags, "model_uri": model_uri},
            )
        return ModelVersion(str(version.version), model_uri, run_id, dict(tags))

    def set_version_tags(self, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.registered_model_name, version, key, str(value))

    def migrated(self) -> None:
        """The task's registered model, created on first use; a project from before one champion per
        task has its per-family models' versions copied in (same source, run and tags, plus `family`
        and `migrated_from`), and the champion that served (`serving_legacy_name`'s) is the champion.
        The other families' promotions are kept as `legacy_promoted_on`: they never served."""
        seen = (self.tracking_uri, self.registered_model_name)
        if seen in _REGISTERED or self.client.search_registered_models(f"name = '{self.registered_model_name}'"):
            _REGISTERED.add(seen)
            return
        self.client.create_registered_model(self.registered_model_name)
        _REGISTERED.add(seen)
        if not self.legacy_prefix:
            return
        legacy = [
            model.name
            for model in self.client.search_registered_models(f"name LIKE '{self.legacy_prefix}%'")
            if model.name != self.registered_model_name and not model.name.startswith(tuple(self.not_legacy_prefixes))
        ]
        for name in sorted(legacy):
            serving = name == self.serving_legacy_name
            champion = self.client.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
            for old in sorted(self.client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
                tags = {**old.tags, "family": old.tags.get("family", name.removeprefix(self.legacy_prefix)),
                        "migrated_from": f"{name} v{old.version}"}  # fmt: skip
                if not serving and "promoted_on" in tags:
                    tags["legacy_promoted_on"] = tags.pop("promoted_on")
                with _fluent_api_at(self.tracking_uri):  # a `models:/<id>` source resolves through it
                    new = self.client.create_model_version(
                        self.registered_model_name, source=old.source, run_id=old.run_id, tags=tags
                    )
                if serving and champion is not None and str(old.version) == str(champion):
                    self.promote(str(new.version))

    def champion(self) -> ModelVersion | None:
        return self._by_alias(CHAMPION_ALIAS)

    def challenger(self) -> ModelVersion | None:
        """The version a grey release is trying on part of the users, if one runs."""
        return self._by_alias(CHALLENGER_ALIAS)

    def _by_alias(self, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        self.migrated()
        try:
            found = self.client.get_model_version_by_alias(self.registered_model_name, alias)
        except MlflowException:
            return None
        return ModelVersion(str(found.version), found.tags["model_uri"], found.run_id, dict(found.tags))

    def publish_router(self, config: Mapping[str, str]) -> str:
        """A new version of `<registered model>-release` (`release.router.ReleaseRouter`) carrying the
        champion and the challenger of `config`, aliased `live`: what an online model server loads."""
        import mlflow

        from algo_platform.release.router import ReleaseRouter

        name = f"{self.registered_model_name}-release"
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        base = f"models:/{self.registered_model_name}"
        artifacts = {"champion": f"{base}/{config['champion_version']}",
                     "challenger": f"{base}/{config['challenger_version']}"}  # fmt: skip
        with _fluent_api_at(self.tracking_uri):
            run = self.client.create_run(self._experiment_id(), run_name=f"release {config['experiment']}")
            with mlflow.start_run(run_id=run.info.run_id):
                logged = mlflow.pyfunc.log_model(name="router", python_model=ReleaseRouter(), artifacts=artifacts,
                                                 model_config=dict(config),
                                                 pip_requirements=["algo-platform", "pandas", "numpy"])  # fmt: skip
            version = self.client.create_model_version(name, source=logged.model_uri, run_id=run.info.run_id,
                                                       tags=dict(config))  # fmt: skip
        self.client.set_registered_model_alias(name, "live", version.version)
        return str(version.version)

    def release_state(self) -> dict[str, str] | None:
        """The last grey release's state (the registered model's `release.*` tags), or None."""
        self.migrated()
        tags = self.client.get_registered_model(self.registered_model_name).tags
        state = {key: tags.get(f"release.{key}") for key in RELEASE_TAGS}
        return state if all(value is not None for value in state.values()) else None

    def save_release(self, state: dict[str, str], challenger: bool) -> None:
        """Record a release's state; `challenger` says whether its version still holds the alias."""
        for key in RELEASE_TAGS:
            self.client.set_registered_model_tag(self.registered_model_name, f"release.{key}", str(state[key]))
        if challenger:
            self.client.set_registered_model_alias(
                self.registered_model_name, CHALLENGER_ALIAS, state["challenger_version"]
            )
        elif self.challenger() is not None:
            self.client.delete_registered_model_alias(self.registered_model_name, CHALLENGER_ALIAS)

    def champion_on(self, day: str) -> ModelVersion | None:
        """The champion as it stood for `day`: the version most recently promoted on or before it.

        An old day's evaluation compares with the model that was serving then, not today's
        champion, so backfilling it reproduces its report."""
        self.migrated()
        promoted = [
            v
            for v in self.client.search_model_versions(f"name = '{self.registered_model_name}'")
            if v.tags.get("promoted_on", "9999") <= day
        ]
        if not promoted:
            return None
        found = max(promoted, key=lambda v: (v.tags["promoted_on"], int(v.version)))
        return ModelVersion(str(found.version), found.tags["model_uri"], found.run_id, dict(found.tags))

    def promote(self, version: str) -> None:
        self.client.set_registered_model_alias(self.registered_model_name, CHAMPION_ALIAS, version)

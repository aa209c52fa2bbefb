"""Resources of one project in the current environment: the only place where local and kubernetes differ."""

import dagster as dg

from algo_platform.core.fleet import queue_labels
from algo_platform.core.project import PROJECT_LABEL, Project, Task
from algo_platform.core.settings import Settings
from algo_platform.resources.data_quality import DataQuality
from algo_platform.resources.io_managers import JsonIOManagerFactory, ParquetIOManagerFactory
from algo_platform.resources.k8s_launcher import K8sTrainingLauncher
from algo_platform.resources.k8s_multinode import K8sMultiNodeTrainingLauncher
from algo_platform.resources.launcher import SubprocessTrainingLauncher, TrainingLauncher
from algo_platform.resources.project import ProjectResource
from algo_platform.resources.promotion import PromotionGate
from algo_platform.resources.spark_launcher import K8sSparkLauncher, LocalSparkLauncher, SparkLauncher
from algo_platform.resources.storage import PlatformStorage
from algo_platform.resources.tracking import ExperimentTracking
from algo_platform.training.idle import idle_rule_environment


def build_training_launcher(settings: Settings, project: Project) -> TrainingLauncher:
    compute = project.compute
    if settings.env == "local":
        return SubprocessTrainingLauncher(env=idle_rule_environment(compute.idle_gpu_percent, compute.idle_minutes))
    launcher_class = K8sMultiNodeTrainingLauncher if compute.nodes > 1 else K8sTrainingLauncher
    return launcher_class(
        image=compute.image or settings.trainer_image,
        namespace=settings.k8s_namespace,
        storage_root=settings.layout.project(project.name).root,
        gpus=compute.gpus,
        nodes=compute.nodes,
        cpu_request=compute.cpu,
        cpu_limit=compute.cpu,
        memory_request=compute.memory,
        memory_limit=compute.memory,
        node_selector=compute.node_selector,
        priority_class=compute.priority_class,
        labels={PROJECT_LABEL: project.name, **queue_labels(project.name, compute.queue, compute.queue_priority)},
        idle_gpu_percent=compute.idle_gpu_percent,
        idle_minutes=compute.idle_minutes,
        cluster_queue=compute.queue,
    )


def build_spark_launcher(settings: Settings, project: Project) -> SparkLauncher:
    compute = project.compute
    spark = compute.spark
    if settings.env == "local":
        return LocalSparkLauncher(driver_memory=spark.driver_memory)
    return K8sSparkLauncher(
        image=settings.spark_image,
        namespace=settings.k8s_namespace,
        executors=spark.executors,
        executor_cores=spark.executor_cores,
        executor_memory=spark.executor_memory,
        driver_memory=spark.driver_memory,
        labels={PROJECT_LABEL: project.name, **queue_labels(project.name, compute.queue, compute.queue_priority)},
    )


def legacy_names(project: Project, task: Task | None) -> dict[str, object]:
    """Where the task's per-family registered models of an older platform are (tracking.migrated)."""
    prefix, serving = project.legacy_model_names(task)
    # Another task's models, old (`<p>-<task>-<family>`) and new (`<p>-<task>`), are not this one's.
    others = [project.task_registered_model_name(t) for t in project.tasks if t is not task]
    return {"legacy_prefix": prefix, "not_legacy_prefixes": others, "serving_legacy_name": serving}


def build_resources(settings: Settings, project: Project) -> dict[str, object]:
    # Tables are stored by asset key, which starts with the project: <storage>/projects/<p>/<asset>/.
    tables = settings.layout.tables
    calendar = {"partitions_start": project.partitions_start.isoformat(), "partition": project.data.partition}
    return {
        "project": ProjectResource.of(project),
        "io_manager": ParquetIOManagerFactory(base_path=tables, **calendar),
        "json_io_manager": JsonIOManagerFactory(base_path=tables, **calendar),
        "storage": PlatformStorage(root=settings.layout.project(project.name).root),
        "data_quality": DataQuality(),
        "promotion": PromotionGate(**project.promotion.model_dump()),
        "experiment_tracking": ExperimentTracking(
            # A tracking server's URL (it may carry credentials) stays an EnvVar: the UI's resource
            # page shows the variable's name, not its value.
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI") if settings.mlflow_tracking_uri else settings.tracking_uri,
            artifact_location=settings.artifact_location,
            experiment_name=project.registered_model_name,
            registered_model_name=project.registered_model_name,
            **legacy_names(project, None),
        ),
        **{
            f"{task.name}_tracking": ExperimentTracking(
                tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI")
                if settings.mlflow_tracking_uri
                else settings.tracking_uri,
                artifact_location=settings.artifact_location,
                experiment_name=project.task_registered_model_name(task),
                registered_model_name=project.task_registered_model_name(task),
                **legacy_names(project, task),
            )
            for task in project.tasks
        },
        "training_launcher": build_training_launcher(settings, project),
        "spark_launcher": build_spark_launcher(settings, project),
    }

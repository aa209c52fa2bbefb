"""Resources chosen by environment: the only place where local and kubernetes differ."""

from algo_platform.resources.data_quality import DataQuality
from algo_platform.resources.io_managers import JsonIOManagerFactory, ParquetIOManagerFactory
from algo_platform.resources.k8s_launcher import K8sTrainingLauncher
from algo_platform.resources.launcher import SubprocessTrainingLauncher, TrainingLauncher
from algo_platform.resources.promotion import PromotionGate
from algo_platform.resources.storage import PlatformStorage
from algo_platform.resources.tracking import ExperimentTracking
from algo_platform.settings import Settings


def build_training_launcher(settings: Settings) -> TrainingLauncher:
    if settings.env == "local":
        return SubprocessTrainingLauncher()
    return K8sTrainingLauncher(
        image=settings.trainer_image, namespace=settings.k8s_namespace, storage_root=settings.storage_root
    )


def build_resources(settings: Settings) -> dict[str, object]:
    return {
        "io_manager": ParquetIOManagerFactory(base_path=settings.storage_path("assets")),
        "json_io_manager": JsonIOManagerFactory(base_path=settings.storage_path("assets")),
        "storage": PlatformStorage(root=settings.storage_root),
        "data_quality": DataQuality(),
        "promotion": PromotionGate(),
        "experiment_tracking": ExperimentTracking(
            tracking_uri=settings.tracking_uri, artifact_location=settings.artifact_location
        ),
        "training_launcher": build_training_launcher(settings),
    }

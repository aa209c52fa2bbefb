"""The trainer image holds only the trainers (algo_platform/training, the engagement task's), the models,
the hyper-parameters' declaration and the task contract: they must not import the rest of the platform."""

import ast
import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[2] / "algo_platform" / "training"
MODELS = TRAINING.parent / "models"
ENGAGEMENT = TRAINING.parent / "tasks" / "engagement"
TASK_TRAINER = [
    TRAINING.parent / "tasks" / "contract.py",
    *(ENGAGEMENT / name for name in ("__init__.py", "features.py", "metrics.py", "train.py")),
]
IN_IMAGE = (
    "algo_platform.training",
    "algo_platform.models",
    "algo_platform.core.environment",
    "algo_platform.core.hyperparameters",
    "algo_platform.core.families",
    "algo_platform.tasks.contract",
    "algo_platform.tasks.engagement.features",
    "algo_platform.tasks.engagement.metrics",
)
ALLOWED = {"torch", "numpy", "pyarrow", "pandas", "sklearn", "dagster_pipes", "pynvml", "algo_platform"}


def test_trainer_imports_only_what_the_trainer_image_installs():
    found: dict[str, set[str]] = {}
    for source in [*TRAINING.glob("*.py"), *MODELS.glob("*.py"), *TASK_TRAINER]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                inside_image = name.startswith(IN_IMAGE)
                if top == "algo_platform" and not inside_image or top not in ALLOWED:
                    found.setdefault(source.name, set()).add(name)
    assert found == {}, f"imports the trainer image does not have: {found}"


def test_dockerfile_copies_only_the_trainer():
    dockerfile = (TRAINING.parents[1] / "deploy" / "Dockerfile.trainer").read_text()
    # Every source of every COPY (all but the last word, the destination; no --flags here).
    sources = [word for line in dockerfile.splitlines() if line.startswith("COPY") for word in line.split()[1:-1]]
    assert not [word for word in sources if word.startswith("--")]
    assert sources == [
        "algo_platform/__init__.py",
        "algo_platform/core/__init__.py",
        "algo_platform/core/environment.py",
        "algo_platform/core/hyperparameters.py",
        "algo_platform/core/families.py",
        "algo_platform/models",
        "algo_platform/training",
        "algo_platform/tasks/__init__.py",
        "algo_platform/tasks/contract.py",
        "algo_platform/tasks/engagement/__init__.py",
        "algo_platform/tasks/engagement/features.py",
        "algo_platform/tasks/engagement/metrics.py",
        "algo_platform/tasks/engagement/train.py",
    ]
    assert "dagster-webserver" not in dockerfile and "dagster-pipes" in dockerfile

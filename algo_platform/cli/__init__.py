"""`algo-platform`: one command, its groups in the modules beside this one.

data.py     generate, upload, import, backfill, retrain   (data in, and the retrain job on demand)
demo.py     demo                                     (the whole graph on synthetic data)
projects.py project new | list
releases.py release status | pause | resume | advance | roll-back   (a grey release)
users.py    users ..., audit
servers.py  webserver, dev
k8s.py      k8s render-training-pod | render-queues | reap
fleet.py    fleet local-pools                        (the GPU fleet without Kubernetes)
"""

from __future__ import annotations

import warnings

import click

from algo_platform.cli.data import backfill, generate, import_history, retrain, upload
from algo_platform.cli.demo import demo
from algo_platform.cli.fleet import fleet
from algo_platform.cli.k8s import k8s
from algo_platform.cli.projects import project
from algo_platform.cli.releases import release
from algo_platform.cli.servers import dev, webserver
from algo_platform.cli.users import audit, users

# A person at a terminal reads the platform's output, not its libraries' notes to developers
# (Dagster's beta and preview markers, deprecations inside libraries); tests still see them all.
for library_note in (
    r".*is currently in (beta|preview)",
    r".*(is|has been) deprecated",
    r".*does not yet fully support",
):
    warnings.filterwarnings("ignore", message=library_note)


@click.group()
def main() -> None:
    """algo-platform: user-behaviour data, quality checks, PyTorch training, on Dagster."""


for command in (
    generate,
    upload,
    import_history,
    backfill,
    retrain,
    demo,
    project,
    release,
    users,
    audit,
    webserver,
    dev,
    k8s,
    fleet,
):
    main.add_command(command)


if __name__ == "__main__":
    main()

"""algo-platform: Dagster assets, checks and a PyTorch trainer for user-behaviour data."""

import os

__version__ = "0.1.0"

# The packages of algo_platform from the bottom up (and `definitions.py`, the one module at the top
# of the package): a package imports only the ones before it (and itself).
# tests/unit/test_architecture.py holds every import to this order, and every package must be listed.
LAYERS = (
    "core",  # schema, settings, storage layout, atomic writes, project.yaml
    "quality",  # quality dimensions, data contracts, Great Expectations suites
    "profiles",  # data profiles per partition, the project's rollup, the data page's figures
    "models",  # the PyTorch model families
    "ingest",  # landing zone, file formats, quarantine, upload, history import
    "engines",  # raw -> cleaned -> features: polars, Spark (no dagster; dagster_pipes allowed)
    "training",  # the trainer process
    "evaluation",  # metrics, report, promotion rule, recommender
    "release",  # grey releases: sticky assignment, the always-valid statistics, the decisions
    "tasks",  # the task contract, and task types beyond next-item (engagement)
    "accounts",  # users, roles, sessions, audit
    # The Dagster side, as the project was specified:
    "resources",  # resources and launchers (local, Kubernetes, Kueue), IO managers, partitions
    "assets",  # asset and check factories, one module per stage of the data flow
    "jobs",  # a project's jobs, schedules, sensors and backfills
    "definitions",  # definitions.py: one project's Definitions, built from its project file
    "pipeline",  # deprecated import path (pipeline.location) of projects scaffolded before round 4
    "web",  # the webserver's sign-in, policy and pages
    "cli",  # the algo-platform command
)

# polars allocates with jemalloc, which keeps freed pages for reuse. A cleaning step frees large
# temporaries (raw columns, sort keys, hash tables) as it goes, and kept pages still count against
# the machine's or the pod's memory: a background thread returns them within 100 ms instead.
# jemalloc reads this once, when polars loads, so it is set before anything here imports polars;
# a value set by the operator wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0")

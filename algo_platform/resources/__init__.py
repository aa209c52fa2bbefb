"""The Dagster side's resources: storage and IO managers, the project, data quality, experiment
tracking, the promotion gate, the training and Spark launchers (local, Kubernetes, Kueue), and the
project's partitions they share with the assets and jobs. `environment.py` picks them for the
current environment (`ALGO_PLATFORM_ENV`): the only place where local and Kubernetes differ."""

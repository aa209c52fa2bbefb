"""raw -> cleaned -> features on Spark: the session, the storage it reads and writes, and the job
that Dagster Pipes launches."""

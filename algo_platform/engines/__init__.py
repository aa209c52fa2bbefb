"""The data stage (raw -> cleaned -> features): `polars` on one machine, `spark` for days beyond
one. Engines import no Dagster; the Spark job speaks Dagster Pipes."""

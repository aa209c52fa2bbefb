"""A Spark project whose storage root is an object store (moto's S3 on 127.0.0.1): the Spark job
reads the raw day from the bucket and writes its tables there, as the polars steps do, and a
table being replaced is never seen half-written.

Spark runs in local mode on Java 17: skipped without Java, failed instead under REQUIRE_SPARK=1.
"""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from upath import UPath

from algo_platform.core.atomic import PARTS_MANIFEST
from algo_platform.resources.io_managers import read_table
from tests.support.factories import END_DAY
from tests.support.s3_server import start_object_store
from tests.support.spark import assert_same_ingest, ingest_one_day, skip_without_java


@pytest.fixture(scope="module")
def store():
    skip_without_java()
    store, stop = start_object_store()
    patch = pytest.MonkeyPatch()
    for name, value in store.environment.items():
        patch.setenv(name, value)
    yield store
    patch.undo()
    stop()


@pytest.fixture(scope="module")
def spark(store):
    """A session whose Python workers (the data source's readers and writers) get the store's
    credentials, also when an earlier test module started Spark's JVM without them."""
    from algo_platform.engines.spark.session import session

    conf = {f"spark.executorEnv.{name}": value for name, value in store.environment.items()}
    spark = session("algo-platform object-storage tests", master="local[2]", conf=conf)
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()


def test_a_spark_project_on_object_storage_ingests_a_day_as_a_polars_project_on_disk(store, tmp_path):
    on_polars, polars_root = ingest_one_day(tmp_path, "polars")
    on_spark, spark_root = ingest_one_day(tmp_path, "spark", storage_root=f"s3://{store.bucket}/platform")
    assert_same_ingest(on_polars, polars_root, on_spark, spark_root)

    keys = store.object_keys("platform/")
    for table in ("cleaned_events", "user_features", "item_features"):
        folder = f"{spark_root.path.split('/', 1)[1]}/{table}/{END_DAY}.parquet/"
        parts = [key for key in keys if key.startswith(folder)]
        assert folder + PARTS_MANIFEST in parts and any(key.endswith(".parquet") for key in parts), table
    assert not [key for key in keys if ".writing-" in key], "a staging folder was left on the store"


def _table(spark, rows: int):
    return spark.range(rows).selectExpr("id AS user_id", "CAST(id * 2 AS DOUBLE) AS score").repartition(3)


def test_a_table_on_the_store_is_replaced_whole_or_not_at_all(spark, store):
    from pyspark.sql import functions as F

    from algo_platform.engines.spark import storage as spark_storage

    path = f"s3://{store.bucket}/replace/user_features/{END_DAY}.parquet"
    spark_storage.write(_table(spark, 40), path)
    first = read_table(UPath(path)).sort_by("user_id")
    assert first.column("user_id").to_pylist() == list(range(40))

    # A task fails halfway: the job is aborted, and the previous table is still the stored one.
    failing = _table(spark, 40).withColumn("score", F.when(F.col("user_id") == 33, F.raise_error("disk full")))
    with pytest.raises(Exception, match="disk full"):
        spark_storage.write(failing, path)
    assert read_table(UPath(path)).sort_by("user_id").equals(first)

    # A smaller table replaces it; the previous parts are gone, and so is what the failed write
    # staged (a task still running when the job was aborted may finish its part after the abort).
    spark_storage.write(_table(spark, 5), path)
    assert sorted(read_table(UPath(path)).column("user_id").to_pylist()) == list(range(5))
    keys = store.object_keys("replace/")
    assert not [key for key in keys if ".writing-" in key]
    assert len([key for key in keys if key.endswith(".parquet")]) <= 3  # the new parts only
    assert spark_storage.read(spark, path).count() == 5

    # A part that a commit killed midway left in the folder is not named by the manifest: not read.
    folder = UPath(path)
    with (folder / "part-00009-interrupted-0.parquet").open("wb") as file:
        pq.write_table(pa.table({"user_id": [999], "score": [0.0]}), file)
    assert sorted(read_table(folder).column("user_id").to_pylist()) == list(range(5))
    assert spark_storage.read(spark, path).count() == 5

    # A write of no rows stores an empty table with the columns.
    spark_storage.write(_table(spark, 5).where("user_id < 0"), path)
    empty = read_table(folder)
    assert empty.num_rows == 0 and empty.column_names == ["user_id", "score"]

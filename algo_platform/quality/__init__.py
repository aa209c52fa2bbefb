"""What makes data good enough to use: the quality dimensions and profiles of a table, and the
Great Expectations suites that check it, shared by the polars steps and the Spark job."""

"""What makes data good enough to use: the quality dimensions and profiles of a table, each
table's contract (its rules), the Great Expectations suites that check them, and the summary a
materialization reports; shared by the polars steps and the Spark job."""

"""Data profiles: what the data page shows, computed once per partition at ingest (compute.py),
gathered into one small table per project (rollup.py) and turned into the page's figures (overview.py)."""

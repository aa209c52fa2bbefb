"""IO managers on Dagster's UPathIOManager: Parquet for tables, JSON for small records.

Both write under `<storage>/assets/<asset key>/<partition>.<ext>` on any fsspec filesystem.
An input annotated as `UPath` receives the stored file's path instead of its contents, so a
step that hands data to another process (the trainer) passes a path, not a copy; one annotated
as `pyarrow.Table` receives the Arrow table as read, without the conversion to pandas.
"""

import json
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath


def _wants_path(context: dg.InputContext) -> bool:
    return context.dagster_type is not None and context.dagster_type.typing_type is UPath


def _wants_arrow(context: dg.InputContext) -> bool:
    return context.dagster_type is not None and context.dagster_type.typing_type is pa.Table


def _write_atomically(path: UPath, data: bytes) -> None:
    temp = path.with_name(f".tmp-{path.name}")
    temp.write_bytes(data)
    temp.rename(path)


class ParquetIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(obj, preserve_index=False), sink, compression="zstd")
        _write_atomically(path, sink.getvalue().to_pybytes())

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame | pa.Table | UPath:
        if _wants_path(context):
            if not path.exists():
                raise FileNotFoundError(
                    f"{path} does not exist; materialize {context.asset_key.to_user_string()} first"
                )
            return path
        with path.open("rb") as file:
            table = pq.read_table(file)
        # Steps that compute with Arrow (cleaning, features) ask for it and skip the pandas copy.
        return table if _wants_arrow(context) else table.to_pandas()

    def get_metadata(self, context: dg.OutputContext, obj: pd.DataFrame) -> dict[str, Any]:
        return {
            "dagster/row_count": len(obj),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in obj.dtypes.items()]
            ),
        }


class JsonIOManager(dg.UPathIOManager):
    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: dict, path: UPath) -> None:
        _write_atomically(path, json.dumps(obj, indent=2, default=str).encode())

    def load_from_path(self, context: dg.InputContext, path: UPath) -> dict:
        return json.loads(path.read_text())


class ParquetIOManagerFactory(dg.ConfigurableIOManagerFactory):
    """Tables as Parquet under `base_path` (a folder or fsspec URL)."""

    base_path: str

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        return ParquetIOManager(base_path=UPath(self.base_path))


class JsonIOManagerFactory(dg.ConfigurableIOManagerFactory):
    """Small records (model descriptors) as JSON under `base_path`."""

    base_path: str

    def create_io_manager(self, context: dg.InitResourceContext) -> JsonIOManager:
        return JsonIOManager(base_path=UPath(self.base_path))

"""Where the landing zone, quarantine and model files live."""

import dagster as dg


class PlatformStorage(dg.ConfigurableResource):
    """The storage root: a local folder or an fsspec URL such as s3://bucket/prefix."""

    root: str

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

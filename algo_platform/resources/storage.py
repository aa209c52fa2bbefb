"""Where a project's landing zone, quarantine, models and reports live."""

import dagster as dg

from algo_platform.core.layout import ProjectLayout


class PlatformStorage(dg.ConfigurableResource):
    """A project's storage root: a local folder or an fsspec URL such as s3://bucket/prefix/projects/<p>."""

    root: str

    @property
    def layout(self) -> ProjectLayout:
        return ProjectLayout(self.root)

"""Grey releases: a challenger earns its users through their feedback (no dagster here)."""

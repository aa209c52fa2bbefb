"""algo-platform: Dagster assets, checks and a PyTorch trainer for user-behaviour data."""

__version__ = "0.1.0"

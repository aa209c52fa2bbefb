"""The data stage (raw -> cleaned -> features) as polars lazy frames on one machine."""

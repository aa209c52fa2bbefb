"""raw -> cleaned -> features as polars lazy frames on one machine, streamed for days larger than memory."""

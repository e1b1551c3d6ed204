"""Built-in sink ``parquet`` (being written: issue 3, item 5)."""

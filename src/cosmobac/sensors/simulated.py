"""Placeholder: the simulated fleet is being written (see issue 2, item 5)."""

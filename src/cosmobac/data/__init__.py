"""Data files shipped with cosmobac (read with :mod:`importlib.resources`)."""

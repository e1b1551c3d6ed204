"""Placeholder for built-in transforms."""

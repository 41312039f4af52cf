"""Entrypoints for `ray job submit`."""

"""The base layer: settings, table and feature declarations, warehouse I/O, MLflow helpers, errors.

Imports nothing above it (the layer contract in pyproject.toml); jobs/, ml/, synthetic/ and app/ build on it.
"""

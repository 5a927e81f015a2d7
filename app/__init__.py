"""The application layer: the ``segments`` command line and the daily chain; it may import every layer below."""

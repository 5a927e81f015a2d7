"""``segments ingest``: land a shop's own data (CSV, Parquet, a PostgreSQL query) as raw warehouse partitions.

A TOML mapping file (``mapping``) says, per raw table, where the data is and how its columns become the
contract's (``core.tables``). ``source`` reads it, ``load`` converts it into DuckDB (types, UTC, units,
status vocabulary, derived keys), ``checks`` stops bad input before anything is written, ``profile`` is the
dry run, ``writer`` stages the partitions and swaps them in, ``runner`` runs the whole. See docs/ingest.md.
"""

"""Publishing to both BI databases for real: DuckDB file and the PostgreSQL server."""

from __future__ import annotations

import pyarrow as pa
import pytest

from core import tables, warehouse
from jobs import publish

pytestmark = pytest.mark.integration


def _write_day(ds: str, users: int, segment_of=lambda i: i % 2, version: str = "1") -> None:
    labels = pa.Table.from_pylist(
        [{"user_id": f"u{i}", "segment_id": segment_of(i), "segment_name": f"seg{segment_of(i)}",
          "confidence": 0.9, "probabilities": [0.9, 0.1], "model_name": "user_segmenter",
          "model_version": version} for i in range(users)],
        schema=tables.table("segments.user_segments").arrow_schema(),
    )
    warehouse.write_arrow("segments.user_segments", labels, ds)
    sizes = {}
    for i in range(users):
        sizes[segment_of(i)] = sizes.get(segment_of(i), 0) + 1
    profile_cols = tables.table("segments.segment_profiles").column_names
    profiles = [{c: 0.0 for c in profile_cols} | {"segment_id": s, "segment_name": f"seg{s}", "users": n,
                                                  "share": n / users, "model_version": version}
                for s, n in sizes.items()]
    warehouse.write_arrow("segments.segment_profiles",
                        pa.Table.from_pylist(profiles, schema=tables.table("segments.segment_profiles").arrow_schema()),
                        ds)


def _counts() -> dict[str, int]:
    out = {}
    for table in ("user_segments", "segment_profiles", "publish_log"):
        _, rows = publish.query(f"SELECT count(*) FROM segments.{table}")
        out[table] = rows[0][0]
    return out


@pytest.fixture(params=["duckdb", "postgres"])
def bi_target(request, platform_home, monkeypatch):
    if request.param == "postgres":
        monkeypatch.setenv("SEGMENTS_BI_URL", request.getfixturevalue("postgres_url"))
    return request.param


def test_publish_is_idempotent_and_keeps_history_of_profiles(bi_target):
    _write_day("2026-03-01", users=10)
    _write_day("2026-03-02", users=12)

    publish.publish("2026-03-01")
    publish.publish("2026-03-02")
    first = _counts()
    publish.publish("2026-03-02")  # rerun of the same date
    assert _counts() == first == {"user_segments": 12, "segment_profiles": 4, "publish_log": 2}

    # Backfilling an older date refreshes its profiles but never rolls current labels back.
    summary = publish.publish("2026-03-01")
    assert not summary.current_replaced
    _, rows = publish.query("SELECT DISTINCT ds FROM segments.user_segments")
    assert rows == [("2026-03-02",)]
    _, rows = publish.query("SELECT ds, sum(users) FROM segments.segment_profiles GROUP BY ds ORDER BY ds")
    assert rows == [("2026-03-01", 10), ("2026-03-02", 12)]


def test_failed_publish_leaves_the_previous_version(bi_target):
    _write_day("2026-03-01", users=10)
    publish.publish("2026-03-01")
    # A broken newer partition: every user in segment 0, plus a duplicated profile row that violates the
    # (ds, segment_id) key only after the labels were already replaced inside the transaction.
    _write_day("2026-03-02", users=20, segment_of=lambda i: 0, version="2")
    bad = warehouse.read_arrow("segments.segment_profiles", "2026-03-02")
    warehouse.write_arrow("segments.segment_profiles", pa.concat_tables([bad, bad]), "2026-03-02")
    with pytest.raises(Exception):
        publish.publish("2026-03-02")
    _, rows = publish.query("SELECT count(*), max(ds), max(model_version) FROM segments.user_segments")
    assert rows == [(10, "2026-03-01", "1")]

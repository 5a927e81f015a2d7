"""Every warehouse table declared once: name, columns with types, key, partitioning.

Schemas are data (column name -> type name); Spark DDL and Arrow schemas are derived from them. Every
partitioned table is partitioned by ``ds`` (a ``YYYY-MM-DD`` string). The feature tables' columns come
from ``core.feature_catalog``. I/O lives in ``core.warehouse``; this module reads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from core import feature_catalog

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

PARTITION_COLUMN = "ds"

SPARK_TYPES = {
    "string": "STRING",
    "int": "INT",
    "long": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "array<double>": "ARRAY<DOUBLE>",
    "map<string,long>": "MAP<STRING, BIGINT>",
}
_FEATURE_TYPES = {"numeric": "double", "categorical": "string", "sequence": "array<double>"}


@dataclass(frozen=True)
class Table:
    name: str  # "<layer>.<table>"
    columns: tuple[tuple[str, str], ...]  # data columns (ds excluded), in storage order
    key: tuple[str, ...]  # unique per partition
    partitioned: bool = True
    description: str = ""
    # Raw tables: the columns every shop's source must provide; the others may be absent (stored as null,
    # or derived by ingest: see docs/data-contract.md).
    required: tuple[str, ...] = ()
    # A snapshot table (raw.users): a run of ds reads its latest partition on or before ds.
    snapshot: bool = False

    @property
    def layer(self) -> str:
        return self.name.split(".")[0]

    @property
    def short_name(self) -> str:
        return self.name.split(".")[1]

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def all_columns(self) -> list[str]:
        return self.column_names + ([PARTITION_COLUMN] if self.partitioned else [])

    def spark_ddl(self, with_partition: bool = True, only: Iterable[str] | None = None) -> str:
        """Spark DDL of the table (or of the columns ``only``, in that order)."""
        types = dict(self.columns)
        names = list(only) if only is not None else self.column_names
        cols = [f"`{c}` {SPARK_TYPES[types[c]]}" for c in names]
        if self.partitioned and with_partition and only is None:
            cols.append(f"`{PARTITION_COLUMN}` STRING")
        return ", ".join(cols)

    def arrow_schema(self, with_partition: bool = False) -> "pa.Schema":
        import pyarrow as pa

        types = {
            "string": pa.string(),
            "int": pa.int32(),
            "long": pa.int64(),
            "double": pa.float64(),
            "bool": pa.bool_(),
            "timestamp": pa.timestamp("us", tz="UTC"),
            "array<double>": pa.list_(pa.float64()),
            "map<string,long>": pa.map_(pa.string(), pa.int64()),
        }
        fields = [pa.field(c, types[t]) for c, t in self.columns]
        if self.partitioned and with_partition:
            fields.append(pa.field(PARTITION_COLUMN, pa.string()))
        return pa.schema(fields)


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    """Parse 'name:type, name:type' (keeps the declarations below readable)."""
    out = []
    for item in spec.split(","):
        name, _, typ = item.strip().partition(":")
        out.append((name.strip(), typ.strip()))
    return tuple(out)


UNKNOWN = "unknown"
# The raw contract's vocabularies: cleaning quarantines any other value, the generator writes only these.
EVENT_TYPES = ("view", "search", "add_to_cart", "remove_from_cart", "purchase")
ORDER_STATUSES = ("completed", "cancelled", "refunded")  # in this order: user_daily unpacks it

# segments.segment_profiles: per segment, the mean of these features of features.user_features (column ->
# feature), for BI; jobs/profiles.py computes them.
PROFILE_MEANS = {
    "avg_recency_days": "recency_days",
    "avg_orders_90d": "orders_90d",
    "avg_revenue_90d": "revenue_90d",
    "avg_views_30d": "views_30d",
    "avg_discount_share_90d": "discount_share_90d",
    "avg_activity_trend": "activity_trend",
}

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "raw.events",
            _cols(
                "event_id:string, user_id:string, event_ts:timestamp, event_type:string, product_id:string,"
                " category:string, price:double, quantity:int, session_id:string, dwell_seconds:double,"
                " device:string"
            ),
            key=("event_id",),
            description="Clickstream events, partitioned by the UTC date they arrived.",
            required=("user_id", "event_ts", "event_type"),
        ),
        Table(
            "raw.orders",
            _cols(
                "order_id:string, user_id:string, order_ts:timestamp, amount:double, item_count:int,"
                " discount_amount:double, status:string"
            ),
            key=("order_id",),
            description="Orders (status completed/cancelled/refunded).",
            required=("user_id", "order_ts", "amount"),
        ),
        Table(
            "raw.users",
            _cols(
                "user_id:string, signup_ts:timestamp, birth_year:int, gender:string, occupation:string,"
                " city_tier:string"
            ),
            key=("user_id",),
            description="Snapshot of user attributes (attributes may be missing); features read the latest on or "
                        "before ds.",
            required=("user_id",),
            snapshot=True,
        ),
        Table(
            "eval.planted_personas",
            _cols("user_id:string, persona:string"),
            key=("user_id",),
            partitioned=False,
            description="Persona planted by the synthetic generator. Read by evaluation code only.",
        ),
        Table(
            "features.user_daily",
            tuple((c.name, c.type) for c in feature_catalog.DAILY_COLUMNS),
            key=("user_id",),
            description="One row per user and UTC day with any event or order (cleaned); see docs/features.md.",
        ),
        Table(
            "features.user_features",
            (
                ("user_id", "string"),
                *[(f.name, _FEATURE_TYPES[f.kind]) for f in feature_catalog.FEATURES],
            ),
            key=("user_id",),
            description="One row per user active in the 90 days up to ds; training and scoring read it.",
        ),
        Table(
            "segments.user_segments",
            _cols(
                "user_id:string, segment_id:int, segment_name:string, confidence:double,"
                " probabilities:array<double>, model_name:string, model_version:string, lifecycle:string,"
                " days_since_last_active:int"
            ),
            key=("user_id",),
            description="The segment of every customer ever seen, as of ds: the model's for those active in "
                        "the 90 days up to ds, a lifecycle segment (core/lifecycle.py) for the others.",
        ),
        Table(
            "segments.date_models",
            _cols("model_name:string, first_version:string, version:string"),
            key=("model_name",),
            description="Per ds, the model version that first labelled the date (a rerun scores with it "
                        "again unless asked for the champion) and the version of its current labels.",
        ),
        Table(
            "segments.segment_profiles",
            (
                *_cols("segment_id:int, segment_name:string, users:long, share:double, avg_confidence:double"),
                *[(column, "double") for column in PROFILE_MEANS],
                ("model_version", "string"),
                ("avg_days_since_last_active", "double"),
            ),
            key=("segment_id",),
            description="Per ds and segment: size, share and the mean of key features.",
        ),
        Table(
            "features.user_lifetime",
            _cols(
                "user_id:string, first_seen_ds:string, last_seen_ds:string, first_purchase_ds:string,"
                " last_purchase_ds:string, lifetime_orders:long, lifetime_revenue:double,"
                " lifetime_active_days:long"
            ),
            key=("user_id",),
            description="Cumulative per-user state over every user_daily day <= ds (jobs/features/lifetime.py).",
        ),
        Table(
            "features.user_window",
            (
                ("user_id", "string"),
                *[(c, "long") for c in ("active_days", "sessions", "views", "searches", "add_to_carts",
                                        "purchases", "orders", "product_days", "cancelled_orders",
                                        "refunded_orders", "events")],
                *[(f"events_{name}", "long") for name, _, _ in feature_catalog.DAYPARTS],
                ("events_weekend", "long"),
                ("events_holiday", "long"),
                *[(c, "double") for c in ("revenue", "discount_amount", "dwell_seconds")],
                ("last_seen_ds", "string"),
                ("last_purchase_ds", "string"),
                ("holiday_country", "string"),
            ),
            key=("user_id",),
            description="Per user active in the 90 days up to ds: sums of user_daily over those days, "
                        "updated by the days entering and leaving the window (jobs/features/window_state.py).",
        ),
        Table(
            "features.user_category_window",
            _cols("user_id:string, category:string, events:long, last_seen_ds:string"),
            key=("user_id", "category"),
            description="Per user and category with events in the 90 days up to ds: events and last day "
                        "(jobs/features/window_state.py).",
        ),
        Table(
            "features.user_daily_inputs",
            _cols("raw_table:string, raw_ds:string, fingerprint:string, params_fit_ds:string, late_days:int"),
            key=("raw_table", "raw_ds"),
            description="Per user_daily day: the raw partitions (with their fingerprints), cleaning "
                        "parameters and lookback it was built from; a lookback day is rebuilt only when they "
                        "changed.",
        ),
        Table(
            "features.state_as_of",
            _cols("state_table:string, as_of:string"),
            key=("state_table",),
            description="Per state table and date: the run (its ds) that wrote the stored state. A state is "
                        "final once written by a run L days after its date; runs merge from final states.",
        ),
        Table(
            "features.cleaning_params",
            _cols(
                "table_name:string, column_name:string, param:string, quantile:double, value:double,"
                " fitted_rows:long, window_start:string"
            ),
            key=("table_name", "column_name", "param"),
            description="Winsorisation caps and imputation medians fitted on the raw window ending at ds.",
        ),
        Table(
            "quality.quarantine",
            _cols("table_name:string, reason:string, row_key:string, row_json:string"),
            key=("table_name", "row_key", "reason"),
            description="Impossible raw rows with a reason code, partitioned by the raw partition they came from.",
        ),
        Table(
            "quality.cleaning_log",
            _cols("table_name:string, step:string, column_name:string, detail:string, rows:long"),
            key=("table_name", "step", "column_name", "detail"),
            description="Rows affected by each cleaning step, per raw partition ds.",
        ),
        Table(
            "quality.validation_results",
            _cols(
                "table_name:string, suite:string, success:bool, expectations:long, failed:long,"
                " rows:long, summary:string"
            ),
            key=("table_name",),
            description="Great Expectations outcome per validated table and ds.",
        ),
    ]
}


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}") from None

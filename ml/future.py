"""Evaluation by future behaviour: do the segments of a cutoff date say what customers do next?

For the customers with a completed order before the end of the cutoff day D (UTC), the next ``horizon``
days (D, D+H] give each customer a future spend and a churn flag (no completed order in the window). A
segmentation is scored by

- **eta squared** of log(1 + future spend): the between-segment sum of squares over the total sum of
  squares, i.e. the share of the variance the segment means explain;
- **churn AUC**: ROC AUC of ranking customers by their segment's churn rate.

The platform's labels (``segments.user_segments`` for D) are compared with two baselines at the same k,
fitted on each customer's history up to D: K-means on standardised recency / log frequency / log monetary,
and RFM quintile scores summed and cut into k quantile bins. docs/model.md, "Evaluation by future
behaviour", gives the definitions and a check against a published data set.

``evaluate_future`` and its parts are pure functions on pandas frames; ``evaluate_future_warehouse`` reads
the warehouse, writes the report (table + plot) and logs an MLflow run. No Spark.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from core import settings as settings_mod
from core.errors import PlatformError
from core.model_registry import configure_mlflow
from core.tables import ORDER_STATUSES
from core.warehouse import TableNotFound, partitions, read_arrow, read_pandas

COMPLETED = ORDER_STATUSES[0]  # the raw contract's vocabulary: only a completed order is a purchase
UNLABELLED = "unlabelled"  # customers of the population the platform gave no label
MAX_K = 10  # baselines are fitted at the platform's k, capped here
KMEANS_SEED = 0  # fixed: the reference figures in docs/model.md were reproduced with it
RFM_SCORES = 5  # quintile scores 1..5
EXPERIMENT_NAME = "segments-future-eval"
METHODS = ("platform", "kmeans_rfm", "rfm_quintiles")
ORDER_COLUMNS = ("order_id", "user_id", "order_ts", "amount", "status")


class NoPopulation(PlatformError, ValueError):
    """The population cannot be scored: nobody has a completed order by the end of the cutoff day, fewer
    customers than k, or fewer than 2 platform segments and no k given."""

    hint = "choose a later cutoff (raw.orders must hold completed orders on or before it) or a smaller --k"


@dataclass
class FutureEvaluation:
    """The scores of every segmentation at one cutoff and horizon."""

    cutoff: str
    horizon: int
    k: int  # the baselines' k: the platform's number of segments in the population, capped at MAX_K
    platform_k: int  # distinct platform segments in the population (before the cap, 'unlabelled' excluded)
    population: int
    churn_share: float
    unlabelled: int  # customers of the population without a platform label
    methods: pd.DataFrame  # per method: method, k (groups formed), eta2, churn_auc, population, churn_share
    segments: pd.DataFrame  # per method and segment: customers, share, mean_future_spend, churn_rate
    run_id: str | None = None  # set by evaluate_future_warehouse
    report_dir: Path | None = None

    @property
    def capped(self) -> bool:
        return self.platform_k > MAX_K

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow (undefined ones, NaN, left out)."""
        out = {"population": float(self.population), "churn_share": self.churn_share,
               "unlabelled": float(self.unlabelled), "platform_k": float(self.platform_k)}
        for row in self.methods.itertuples():
            out.update({f"{row.method}_eta2": row.eta2, f"{row.method}_churn_auc": row.churn_auc,
                        f"{row.method}_groups": float(row.k)})
        return {key: float(v) for key, v in out.items() if not np.isnan(v)}


# --- customers ---------------------------------------------------------------------------------------
def _day(value: str | dt.date) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def purchases(orders: pd.DataFrame) -> pd.DataFrame:
    """Completed orders, one row per order_id, with order_ts in UTC (naive timestamps are taken as UTC)."""
    missing = [c for c in ORDER_COLUMNS if c not in orders.columns]
    if missing:
        raise ValueError(f"orders frame lacks columns {missing}")
    done = orders.loc[orders["status"] == COMPLETED, list(ORDER_COLUMNS)]
    # What the platform's cleaning drops or quarantines (no id or time, negative amount) is no purchase;
    # an order delivered twice is one purchase.
    done = done.dropna(subset=["order_id", "user_id", "order_ts", "amount"])
    done = done[done["amount"] >= 0].drop_duplicates("order_id")
    return pd.DataFrame({
        "order_id": done["order_id"].astype(str),
        "user_id": done["user_id"].astype(str),
        "order_ts": pd.to_datetime(done["order_ts"], utc=True),
        "amount": done["amount"].astype(float),
    })


def customer_outcomes(orders: pd.DataFrame, cutoff: str | dt.date, horizon: int) -> pd.DataFrame:
    """One row per customer with a completed order before the end of ``cutoff`` (index user_id, sorted).

    Columns: history up to the cutoff (recency_days: whole UTC days from the last purchase to the cutoff;
    frequency: orders; monetary: spend) and the outcome in (cutoff, cutoff + horizon] (future_spend,
    churned: no completed order in that window).
    """
    day = _day(cutoff)
    bought = purchases(orders)
    midnight = pd.Timestamp(day, tz="UTC")
    end = midnight + pd.Timedelta(days=1)
    past = bought[bought["order_ts"] < end]
    history = past.groupby("user_id").agg(last_ts=("order_ts", "max"), frequency=("order_id", "size"),
                                          monetary=("amount", "sum")).sort_index()
    in_window = (bought["order_ts"] >= end) & (bought["order_ts"] < end + pd.Timedelta(days=horizon))
    future = bought[in_window].groupby("user_id")["amount"].sum()
    return pd.DataFrame({
        "recency_days": (midnight - history["last_ts"].dt.floor("D")).dt.days,
        "frequency": history["frequency"],
        "monetary": history["monetary"],
        "future_spend": future.reindex(history.index, fill_value=0.0),
        "churned": ~history.index.isin(future.index),
    }, index=history.index)


# --- segmentations -----------------------------------------------------------------------------------
def platform_labels(customers: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """Each customer's platform segment name; UNLABELLED where the platform gave none."""
    if labels["user_id"].duplicated().any():
        raise ValueError("labels frame has more than one row for some user_id")
    names = labels.set_index(labels["user_id"].astype(str))["segment_name"].astype(str)
    return names.reindex(customers.index).fillna(UNLABELLED)


def quantile_scores(values: Sequence[float], n: int) -> np.ndarray:
    """Equal-frequency scores 1..n: 1 + floor(n * share of customers with a strictly lower value).

    Ties share a score (that of the first of them in sorted order), so a heavily tied value (one order)
    fills one score and the next scores may be skipped: never are equal customers split arbitrarily.
    """
    v = pd.Series(np.asarray(values, dtype=float))
    below = v.rank(method="min").to_numpy(dtype=np.int64) - 1  # integer maths: no float edge at a boundary
    return 1 + (n * below) // len(v)


def rfm_scores(customers: pd.DataFrame) -> pd.DataFrame:
    """R, F, M quintile scores 1..5 (recent, frequent, big spenders high)."""
    return pd.DataFrame({
        "R": quantile_scores(-customers["recency_days"], RFM_SCORES),
        "F": quantile_scores(customers["frequency"], RFM_SCORES),
        "M": quantile_scores(customers["monetary"], RFM_SCORES),
    }, index=customers.index)


def rfm_quintile_labels(customers: pd.DataFrame, k: int) -> np.ndarray:
    """R + F + M cut into k quantile bins 1..k (ties kept together, see ``quantile_scores``)."""
    return quantile_scores(rfm_scores(customers).sum(axis=1), k)


def kmeans_rfm_labels(customers: pd.DataFrame, k: int, seed: int = KMEANS_SEED) -> np.ndarray:
    """K-means (the teacher's, ml/teacher.py: n_init 10) on standardised recency, log1p frequency and
    log1p monetary."""
    from sklearn.preprocessing import StandardScaler

    from ml.teacher import fit_teacher

    x = np.column_stack([customers["recency_days"].to_numpy(dtype=float),
                         np.log1p(customers["frequency"].to_numpy(dtype=float)),
                         np.log1p(customers["monetary"].to_numpy(dtype=float))])
    return fit_teacher(StandardScaler().fit_transform(x), k, seed).labels


# --- scores ------------------------------------------------------------------------------------------
def eta_squared(values: Sequence[float], groups: Sequence) -> float:
    """Between-group sum of squares / total sum of squares; NaN when every value is the same."""
    y = pd.Series(np.asarray(values, dtype=float))
    total = float(((y - y.mean()) ** 2).sum())
    between = float(((y.groupby(np.asarray(groups)).transform("mean") - y.mean()) ** 2).sum())
    return between / total if total > 0 else float("nan")


def churn_auc(churned: Sequence[bool], groups: Sequence) -> float:
    """ROC AUC of each customer's group churn rate as a churn score; NaN when nobody or everybody churns."""
    from sklearn.metrics import roc_auc_score

    flags = pd.Series(np.asarray(churned, dtype=float))
    if flags.nunique() < 2:
        return float("nan")
    return float(roc_auc_score(flags, flags.groupby(np.asarray(groups)).transform("mean")))


def segment_table(customers: pd.DataFrame, groups: Sequence, method: str) -> pd.DataFrame:
    """Per group: customers, share, mean future spend and churn rate (largest group first)."""
    frame = customers.assign(segment=np.asarray(groups).astype(str))
    table = frame.groupby("segment").agg(customers=("future_spend", "size"),
                                         mean_future_spend=("future_spend", "mean"),
                                         churn_rate=("churned", "mean")).reset_index()
    table.insert(0, "method", method)
    table.insert(3, "share", table["customers"] / len(frame))
    return table.sort_values(["customers", "segment"], ascending=[False, True], ignore_index=True)


def evaluate_future(
    orders: pd.DataFrame,
    labels: pd.DataFrame,
    cutoff: str | dt.date,
    horizon: int = 90,
    k: int | None = None,
    seed: int = KMEANS_SEED,
) -> FutureEvaluation:
    """Score the platform's labels (user_id, segment_name) and the two baselines on future behaviour.

    ``k`` (baselines) defaults to the platform's number of segments in the population, capped at MAX_K.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 day, got {horizon}")
    day = _day(cutoff)
    customers = customer_outcomes(orders, day, horizon)
    if customers.empty:
        raise NoPopulation(f"no customer has a completed order by the end of {day}")
    platform = platform_labels(customers, labels)
    platform_k = int(platform[platform != UNLABELLED].nunique())
    if k is not None and k < 2:
        raise PlatformError(f"k must be at least 2, got {k}", hint="pass --k 2 or more")
    if k is None and platform_k < 2:
        raise NoPopulation(f"the platform gives {platform_k} segment(s) to the {len(customers)} customers of "
                           f"{day}: the baselines need k >= 2", hint="pass --k")
    k = min(platform_k, MAX_K) if k is None else int(k)
    if k > len(customers):
        raise NoPopulation(f"cannot form k={k} segments from {len(customers)} customers of {day}")
    groupings = {"platform": platform.to_numpy(),
                 "kmeans_rfm": kmeans_rfm_labels(customers, k, seed),
                 "rfm_quintiles": rfm_quintile_labels(customers, k)}
    y = np.log1p(customers["future_spend"].to_numpy())
    churn_share = float(customers["churned"].mean())
    rows = [{"method": method, "k": int(pd.Series(g).nunique()), "eta2": eta_squared(y, g),
             "churn_auc": churn_auc(customers["churned"], g), "population": len(customers),
             "churn_share": churn_share} for method, g in groupings.items()]
    return FutureEvaluation(
        cutoff=day.isoformat(), horizon=int(horizon), k=k, platform_k=platform_k, population=len(customers),
        churn_share=churn_share, unlabelled=int((platform == UNLABELLED).sum()),
        methods=pd.DataFrame(rows),
        segments=pd.concat([segment_table(customers, g, m) for m, g in groupings.items()], ignore_index=True),
    )


# --- report ------------------------------------------------------------------------------------------
def _pipe_table(frame: pd.DataFrame, formats: dict[str, str]) -> list[str]:
    """A markdown pipe table of ``formats``' columns (column -> format spec), header underlined."""
    records = frame[list(formats)].to_dict("records")
    cells = [[format(v, formats[c]) for c, v in row.items()] for row in records]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(formats)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    return [line(list(formats)), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)]


def format_report(result: FutureEvaluation) -> str:
    """The method table and the platform's per-segment table, in markdown (what the CLI prints)."""
    day = dt.date.fromisoformat(result.cutoff)
    first, last = day + dt.timedelta(days=1), day + dt.timedelta(days=result.horizon)
    lines = [
        f"Evaluation by future behaviour: cutoff {result.cutoff}, horizon {result.horizon} days "
        f"({first} .. {last}, UTC)",
        "",
        f"population: {result.population:,} customers with a completed order by the end of {result.cutoff}; "
        f"churn share {result.churn_share:.1%} (no completed order in the window)",
        f"platform: {result.platform_k} segments, {result.unlabelled:,} customers unlabelled; "
        f"baselines at k={result.k}",
    ]
    if result.capped:
        lines.append(f"note: the platform gives {result.platform_k} segments; the baselines are capped at "
                     f"k={MAX_K}")
    methods = result.methods.rename(columns={"churn_auc": "churn AUC"})
    lines += ["", *_pipe_table(methods, {"method": "", "k": "d", "eta2": ".3f", "churn AUC": ".3f"}), "",
              "platform segments:"]
    platform = result.segments[result.segments["method"] == "platform"].rename(
        columns={"mean_future_spend": "mean future spend", "churn_rate": "churn rate"})
    lines += _pipe_table(platform, {"segment": "", "customers": ",d", "share": ".1%",
                                    "mean future spend": ",.2f", "churn rate": ".1%"})
    return "\n".join(lines) + "\n"


def future_eval_png(result: FutureEvaluation, path: str | Path) -> Path:
    """Left: eta2 and churn AUC per method; right: each platform segment's churn rate vs mean future spend
    (marker area ~ customers)."""
    from ml.reports import _save, plt  # the shared Agg backend and figure saving of the training reports

    fig, (bars, scatter) = plt.subplots(1, 2, figsize=(12.0, 4.5))
    x = np.arange(len(result.methods))
    series = ((-0.2, "eta2", "eta² of log(1 + future spend)"), (0.2, "churn_auc", "churn AUC"))
    for offset, column, label in series:
        drawn = bars.bar(x + offset, result.methods[column].fillna(0), 0.4, label=label)
        bars.bar_label(drawn, labels=[f"{v:.3f}" for v in result.methods[column]], fontsize=8, padding=2)
    bars.axhline(0.5, color="grey", linestyle=":", linewidth=1)  # AUC of a segmentation that says nothing
    bars.set_xticks(x, [f"{m}\n(k={k})" for m, k in zip(result.methods["method"], result.methods["k"])])
    bars.set_ylim(0, 1.2)  # room for the value labels and the legend above the bars
    bars.legend(fontsize=8, loc="upper center", ncol=2)
    bars.set_title(f"Cutoff {result.cutoff}, next {result.horizon} days: {result.population:,} customers")
    platform = result.segments[result.segments["method"] == "platform"]
    scatter.scatter(platform["churn_rate"], platform["mean_future_spend"], alpha=0.6,
                    s=30 + 1000 * platform["share"].to_numpy())
    for row in platform.itertuples():
        scatter.annotate(f"{row.segment} ({row.customers:,})", (row.churn_rate, row.mean_future_spend),
                         fontsize=8, xytext=(4, 4), textcoords="offset points")
    scatter.set_xlabel(f"churn rate (no completed order in {result.horizon} days)")
    scatter.set_yscale("symlog", linthresh=1.0)  # spend is heavy-tailed; symlog keeps a segment at 0
    scatter.set_ylabel("mean future spend (symlog)")
    scatter.set_title("Platform segments")
    scatter.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def write_report(result: FutureEvaluation, out: Path) -> Path:
    """The markdown report, both tables as CSV and the plot into ``out``; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "future_eval.md").write_text(format_report(result), encoding="utf-8")
    result.methods.to_csv(out / "future_eval_methods.csv", index=False)
    result.segments.to_csv(out / "future_eval_segments.csv", index=False)
    future_eval_png(result, out / "future_eval.png")
    return out


# --- the warehouse command ---------------------------------------------------------------------------
def _date_ranges(days: list[dt.date]) -> str:
    """'a .. b' for each run of consecutive days, comma-separated."""
    runs: list[list[dt.date]] = []
    for d in days:
        if runs and d - runs[-1][-1] == dt.timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]} .. {r[-1]}" for r in runs)


def load_inputs(cutoff: str | dt.date, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw.orders partitions up to cutoff + horizon, segments.user_segments of the cutoff) as pandas.

    Raises TableNotFound naming what is missing: the labels of the cutoff, or raw.orders days of the window.
    """
    import pyarrow as pa

    day = _day(cutoff)
    if day.isoformat() not in partitions("segments.user_segments"):
        raise TableNotFound(f"segments.user_segments has no partition ds={day}",
                            hint=f"score that date first: segments score --ds {day}")
    last = day + dt.timedelta(days=horizon)
    present = set(partitions("raw.orders"))
    window = [day + dt.timedelta(days=i) for i in range(1, horizon + 1)]
    missing = [d for d in window if d.isoformat() not in present]
    if missing:
        raise TableNotFound(
            f"raw.orders lacks {len(missing)} of the {horizon} days after the cutoff {day} "
            f"(needed up to {last}): missing {_date_ranges(missing)}",
            hint="choose an earlier cutoff or a shorter --horizon, or wait until those days have arrived")
    # Partitions hold what arrived that day: read all up to the window's end and select by order_ts.
    orders = pa.concat_tables([read_arrow("raw.orders", ds, ORDER_COLUMNS)
                               for ds in sorted(present) if ds <= last.isoformat()])
    labels = read_pandas("segments.user_segments", day.isoformat(), ["user_id", "segment_id", "segment_name"])
    return orders.to_pandas(), labels


def report_dir(cutoff: str, horizon: int, k: int) -> Path:
    """Where the report of one evaluation goes: $SEGMENTS_HOME/reports/future/<cutoff>_h<horizon>_k<k>."""
    return settings_mod.load().home / "reports" / "future" / f"{cutoff}_h{horizon}_k{k}"


def log_run(result: FutureEvaluation, seed: int) -> str:
    """One MLflow run: params, per-method metrics, the report directory as artifacts; returns its id."""
    import mlflow

    configure_mlflow(EXPERIMENT_NAME)
    with mlflow.start_run(run_name=f"future-{result.cutoff}-h{result.horizon}") as run:
        mlflow.log_params({"cutoff": result.cutoff, "horizon": result.horizon, "k": result.k,
                           "platform_k": result.platform_k, "seed": seed})
        mlflow.log_metrics(result.metrics())
        mlflow.set_tag("cutoff", result.cutoff)
        if result.report_dir is not None:
            mlflow.log_artifacts(str(result.report_dir), "future_eval")
    return run.info.run_id


def evaluate_future_warehouse(
    cutoff: str | dt.date, horizon: int = 90, k: int | None = None, seed: int = KMEANS_SEED
) -> FutureEvaluation:
    """``evaluate_future`` on the warehouse; writes the report under ``report_dir`` and logs an MLflow run."""
    orders, labels = load_inputs(cutoff, horizon)
    result = evaluate_future(orders, labels, cutoff, horizon, k, seed)
    result.report_dir = write_report(result, report_dir(result.cutoff, result.horizon, result.k))
    result.run_id = log_run(result, seed)
    return result

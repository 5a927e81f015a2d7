"""``segments``: the one command line of the platform. Airflow tasks call the same subcommands.

Heavy libraries (Spark, TensorFlow, GX) are imported inside the subcommand that needs them, so
``segments --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import shlex
import sys
import time
from typing import Callable

from app.chain import DAILY_CHAIN, describe
from core.errors import PlatformError
from core.settings import MODEL_CHOICES, SEGMENT_METHODS

log = logging.getLogger("segments")



RAW_TABLES_CHOICE = "raw"  # `validate --table raw`: the shop's raw tables with a suite (the daily chain's gate)


def validated_tables() -> list[str]:
    """Tables that have an expectation suite (the suite files are the one declaration)."""
    from core.settings import REPO_ROOT

    return sorted(p.stem for p in (REPO_ROOT / "expectations").glob("*.json"))


def _date(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return number


def _fraction(value: str) -> float:
    from core.settings import BadSetting, fraction

    try:
        return fraction(value, "--max-shrink")
    except BadSetting as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _spark():
    from jobs.session import build_spark

    return build_spark()


def _step(name: str) -> Callable[[str], None]:
    start = time.monotonic()

    def done(message: str) -> None:
        print(f"[{name}] {message} ({time.monotonic() - start:.1f}s)", flush=True)

    return done


# --- subcommands ------------------------------------------------------------------------------------
def cmd_seed(args: argparse.Namespace) -> None:
    from synthetic.generator import generate

    done = _step("seed")
    summary = generate(users=args.users, days=args.days, end_date=args.end_date, seed=args.seed,
                       progress=not args.quiet)
    personas = ", ".join(f"{k}={v}" for k, v in sorted(summary.persona_counts.items()))
    done(f"{summary.users} users x {summary.days} days ({summary.start_date} .. {summary.end_date}): "
         f"{summary.events} events, {summary.orders} orders; personas: {personas}")


def cmd_ingest(args: argparse.Namespace) -> None:
    from jobs.ingest.runner import ingest

    done = _step("ingest")
    results = ingest(args.mapping, dry_run=args.dry_run, snapshot_ds=args.snapshot_ds,
                     max_shrink=args.max_shrink, progress=not args.quiet)
    for r in results:
        days = sorted(r.day_rows)
        span = f"{days[0]} .. {days[-1]}" if len(days) > 1 else (days[0] if days else "-")
        verb = "written" if r.written else ("would be written" if args.dry_run else "nothing written")
        replaced = f", {len(r.replaced)} replaced" if r.replaced else ""
        print(f"  {r.name}: {r.rows:,} rows from {r.source} -> {len(days)} partition{'s' * (len(days) != 1)} "
              f"{span} {verb}{replaced}")
    done("dry run: checks passed, nothing written" if args.dry_run else "done; each partition has a _SUCCESS marker")


def cmd_features(args: argparse.Namespace, spark=None) -> None:
    from jobs.features.runner import build_features

    done = _step("features")
    summary = build_features(spark or _spark(), args.ds, refit_params=getattr(args, "refit_params", False),
                             rebuild_from=getattr(args, "rebuild_from", None))
    built = summary.daily_dates_built
    span = (built[0] if len(built) == 1 else f"{len(built)} dates {built[0]} .. {built[-1]}") if built else "no date"
    missing = summary.missing_dates_filled
    if missing:
        span += f" (incl. {len(missing)} missing dates of the 90-day window, built first in the same job)"
    if summary.daily_dates_kept:
        span += f"; kept {', '.join(summary.daily_dates_kept)} (no new rows for them)"
    if summary.daily_dates_as_of:
        span += (f"; {', '.join(summary.daily_dates_as_of)} as of {args.ds} for this run (the stored days hold "
                 "rows that arrived later)")
    lifetime = f"merged from {summary.lifetime_base}" if summary.lifetime_base else "rebuilt from scratch"
    window = f"updated from {summary.window_base}" if summary.window_base else "rebuilt from scratch"
    done(f"features.user_daily built for {span}; {summary.quarantined} raw rows quarantined; "
         f"cleaning params of {summary.params_fit_ds}; user_lifetime {lifetime}; user_window {window}; "
         f"features.user_features ds={args.ds}: {summary.active_users} active users")


def cmd_validate(args: argparse.Namespace, spark=None) -> None:
    from jobs.quality import default_engine, needs_spark, raw_tables_to_validate, validate

    names = raw_tables_to_validate() if args.table == RAW_TABLES_CHOICE else [args.table]
    for name in names:
        done = _step("validate")
        engine = getattr(args, "engine", None) or default_engine(name)
        if needs_spark(name, engine):
            spark = spark or _spark()
        outcome = validate(name, args.ds, engine=engine, spark=spark)
        done(outcome.message())


def cmd_train(args: argparse.Namespace) -> None:
    from ml.train import train

    done = _step("train")
    result = train(args.ds, epochs=args.epochs, seed=args.seed, verbose=0 if args.quiet else 2,
                   method=args.method)
    m = result.metrics
    headline = ("holdout_accuracy", "holdout_macro_precision", "holdout_macro_recall", "holdout_macro_f1",
                "cold_start_macro_f1", "teacher_persona_ari", "teacher_persona_nmi", "student_persona_ari",
                "student_persona_nmi", "teacher_silhouette", "day_to_day_stability")
    metrics = ", ".join(f"{k}={m[k]:.3f}" for k in headline if k in m and m[k] == m[k])
    sizes = ", ".join(f"{k}={v}" for k, v in result.segment_sizes.items())
    done(f"registered version {result.model_version} (run {result.run_id})")
    print(f"  teacher: {result.method}, k={int(m['k'])}"
          + (f" (best silhouette at k={int(m['k_silhouette_best'])})" if "k_silhouette_best" in m else "")
          + f"; teacher {m.get('teacher_seconds', 0):.0f}s + student {m.get('student_seconds', 0):.0f}s")
    print(f"  metrics: {metrics}")
    print(f"  segments: {sizes}")
    if result.per_segment is not None:
        print("  held-out report per segment:")
        for line in result.per_segment.to_string(index=False, float_format=lambda v: f"{v:.3f}").splitlines():
            print(f"    {line}")
    print(f"  promotion: {'champion' if result.promoted else 'stays challenger'} - {result.reason}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ml.ablation import run_ablation, to_markdown

    done = _step("evaluate")
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    unknown = sorted(set(methods or []) - set(SEGMENT_METHODS))
    if unknown:
        raise PlatformError(f"unknown segmentation method(s): {', '.join(unknown)}",
                            hint=f"choose from {', '.join(SEGMENT_METHODS)}")
    kwargs = {"methods": methods} if methods else {}
    table = run_ablation(args.ds, ensemble=args.ensemble, epochs=args.epochs, seed=args.seed,
                         progress=lambda message: print(f"  {message}", flush=True), **kwargs)
    text = to_markdown(table, " ".join(["segments", *sys.argv[1:]]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    done(f"ablation of {len(table)} configurations on ds={args.ds} -> {out}")


def cmd_evaluate_future(args: argparse.Namespace) -> None:
    from ml.future import evaluate_future_warehouse, format_report

    done = _step("evaluate-future")
    result = evaluate_future_warehouse(args.cutoff, horizon=args.horizon, k=args.k)
    print(format_report(result))
    done(f"MLflow run {result.run_id} (experiment segments-future-eval); report {result.report_dir}")


def cmd_score(args: argparse.Namespace, spark=None) -> None:
    from jobs.score import resolve_model, score

    done = _step("score")
    model = resolve_model(args.ds, args.model)  # registry + schema check first: fails in seconds, no Spark
    summary = score(spark or _spark(), args.ds, model)
    inactive = ", ".join(f"{n} {name}" for name, n in sorted(summary.inactive.items()))
    done(f"segments.user_segments ds={args.ds}: {summary.users} active users scored with "
         f"{summary.model_name} v{summary.model_version} ({model.chosen})"
         + (f"; from the lifetime state: {inactive}" if inactive else ""))


def cmd_profiles(args: argparse.Namespace, spark=None) -> None:
    from jobs.profiles import build_profiles

    done = _step("profiles")
    segments = build_profiles(spark or _spark(), args.ds)
    done(f"segments.segment_profiles ds={args.ds}: {segments} segments")


def cmd_publish(args: argparse.Namespace, spark=None) -> None:  # noqa: ARG001 - a chain stage: no Spark
    from jobs.publish import publish

    done = _step("publish")
    summary = publish(args.ds)
    current = "current labels replaced" if summary.current_replaced else "older date: current labels kept"
    done(f"{summary.users} labels and {summary.segments} profiles of ds={args.ds} -> {summary.target} "
         f"({current})")


def cmd_run(args: argparse.Namespace) -> None:
    """The daily chain (app/chain.py) for one date in one Spark session, without Airflow (for debugging)."""
    parser = build_parser()
    spark = _spark()
    for stage in DAILY_CHAIN:
        stage_args = parser.parse_args([*(["--quiet"] if args.quiet else []), *stage.args(args.ds)])
        if hasattr(stage_args, "model"):
            stage_args.model = args.model
        stage_args.func(stage_args, spark)


def cmd_sql(args: argparse.Namespace) -> None:
    from jobs.bi_access import query

    columns, rows = query(args.query)
    if not columns:  # a statement without a result set (e.g. SET): nothing to print
        return
    widths = [max([len(c)] + [len(str(r[i])) for r in rows]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))


def cmd_info(args: argparse.Namespace) -> None:
    from core import settings, tables, warehouse
    from jobs.bi_access import postgres_target
    s = settings.load()
    print(f"SEGMENTS_HOME  {s.home}")
    print(f"warehouse      {s.warehouse}")
    print(f"MLflow         {s.mlflow_tracking_uri}")
    print(f"BI database    {postgres_target(s.bi_url) if s.bi_is_postgres else s.bi_url}")  # never a password
    print(f"Data Docs      {s.gx_dir}")
    print("tables:")
    for name, table in tables.TABLES.items():
        parts = warehouse.partitions(name) if table.partitioned else []
        where = warehouse.table_path(name)
        span = f"{len(parts)} partitions {parts[0]} .. {parts[-1]}" if parts else ""
        print(f"  {name:<28} {span:<44} {where}")


def cmd_model_list(args: argparse.Namespace) -> None:
    from core.model_registry import mlflow_client
    from core.settings import load
    from ml.registry import list_versions

    name = load().model_name
    rows = list_versions(mlflow_client(), name)
    if not rows:
        print(f"no registered versions of {name}; train one: segments train --ds <ds>")
        return
    table = [("version", "aliases", "ds", "holdout_macro_f1", "created (UTC)")]
    table += [(r.version, ",".join(r.aliases) or "-", r.ds or "-", r.holdout_macro_f1[:6] or "-", r.created)
              for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    print(f"{name}:")
    for row in table:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)))


def cmd_model_promote(args: argparse.Namespace) -> None:
    from core.model_registry import mlflow_client
    from core.settings import load
    from ml.registry import promote

    name = load().model_name
    version, old = promote(mlflow_client(), name, args.version, args.reason)
    print(f"{name}: champion is now v{version}" + (f"; v{old} is 'previous'" if old else "")
          + f" (reason: {args.reason})")


def cmd_model_rollback(args: argparse.Namespace) -> None:
    from core.model_registry import mlflow_client
    from core.settings import load
    from ml.registry import rollback

    name = load().model_name
    restored, demoted = rollback(mlflow_client(), name, args.reason)
    print(f"{name}: champion rolled back to v{restored}" + (f" (v{demoted} demoted)" if demoted else ""))


def cmd_bi_grant_reader(args: argparse.Namespace) -> None:
    from jobs.bi_access import grant_reader

    password = None
    if args.password_env:  # the name of a variable: a password never appears on a command line
        password = os.environ.get(args.password_env, "")
        if not password:
            raise PlatformError(f"--password-env {args.password_env}: the variable is not set or empty",
                                hint=f"export {args.password_env}=... first (or omit --password-env for a "
                                "NOLOGIN group role)")
    grant = grant_reader(args.role, password)
    if password:
        how = f"LOGIN, password from ${args.password_env}"
    elif grant.login:
        how = "LOGIN, password unchanged"
    else:
        how = f'NOLOGIN: grant it to BI users, GRANT "{grant.role}" TO ...'
    print(f"{'created' if grant.created else 'updated'} role {grant.role} ({how}): reads schema segments of "
          f"{grant.target}, tables published later included; nothing else"
          + ("; revoked CREATE on schema public from PUBLIC" if grant.revoked_public_create else ""))


# --- parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segments",
        description="Daily user segmentation: seed a warehouse, build features, validate, train, score, publish.",
        epilog="Every location comes from the environment (SEGMENTS_HOME, default ./var); "
        "see `python -m core.settings`.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help_text: str, with_ds: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if with_ds:
            p.add_argument("--ds", type=_date, required=True, help="logical date YYYY-MM-DD (UTC day)")
        p.set_defaults(func=func)
        return p

    _add_data_commands(add)
    _add_training_commands(add)
    _add_model_commands(sub)
    _add_bi_commands(sub)
    return parser


AddCommand = Callable[..., argparse.ArgumentParser]


def _add_data_commands(add: AddCommand) -> None:
    """The warehouse side: seed, the daily chain's stages, the chain itself, and the BI queries."""
    p = add("seed", cmd_seed, "Generate a deterministic synthetic warehouse (raw.events, raw.orders, "
            "raw.users: those of SEGMENTS_RAW_TABLES; and eval.planted_personas).", with_ds=False)
    p.add_argument("--users", type=_positive, default=3000, help="number of users (default 3000)")
    p.add_argument("--days", type=_positive, default=120, help="number of days of history (default 120)")
    p.add_argument("--end-date", type=_date, default="2026-06-30", help="last day generated (default 2026-06-30)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p = add("ingest", cmd_ingest, "Land a shop's own data (CSV, Parquet, a PostgreSQL query) as raw partitions, "
            "one per UTC day, as a TOML mapping file says (docs/ingest.md); bad input stops it before anything "
            "is written.", with_ds=False)
    p.add_argument("mapping", help="the TOML mapping file")
    p.add_argument("--dry-run", action="store_true", help="print a profile and run the checks; write nothing")
    p.add_argument("--snapshot-ds", type=_date, default=None, metavar="DATE",
                   help="the partition of the raw.users snapshot (default: the latest day the mapping ingests)")
    p.add_argument("--max-shrink", type=_fraction, default=None, metavar="X",
                   help="stop when a day has more than this fraction fewer rows than the day before "
                   "(default SEGMENTS_INGEST_MAX_SHRINK, 0.5; 1 disables the check)")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")

    p = add("features", cmd_features, "Clean raw data and build features.user_daily (ds and the days of the "
            "late-data lookback that got new rows, plus missing days of the 90-day window), the states "
            "features.user_lifetime and features.user_window, and features.user_features for ds with Spark.")
    p.add_argument("--refit-params", action="store_true",
                   help="refit the cleaning parameters (caps, medians) on the 90 days up to ds and store them "
                   "under ds (the training DAG does this); default: the latest stored fit on or before ds")
    p.add_argument("--rebuild-from", type=_date, default=None, metavar="DATE",
                   help="backfill: rebuild features.user_daily for every date from DATE to ds in one job")
    p = add("validate", cmd_validate, "Validate one table partition with its Great Expectations suite; "
            "fails (exit 1) naming table, ds, expectation and unexpected count.")
    p.add_argument("--table", required=True, choices=[RAW_TABLES_CHOICE, *validated_tables()],
                   help=f"table to validate; '{RAW_TABLES_CHOICE}': each of the shop's raw tables "
                   "(SEGMENTS_RAW_TABLES) that has a suite")
    p.add_argument("--engine", choices=("spark", "pandas"), default=None,
                   help="GX execution engine (default: the one the suite declares in its meta)")
    p = add("score", cmd_score, "Label every customer ever seen as of ds: the users of features.user_features "
            "with the model inside Spark, the others lapsed or churned from the lifetime state; writes "
            "segments.user_segments and records the model version in segments.date_models.")
    _add_model_choice(p)
    add("profiles", cmd_profiles, "Write segments.segment_profiles for ds (size, share, feature means).")
    add("publish", cmd_publish, "Publish ds labels and profiles to the BI database in one transaction.")
    p = add("run", cmd_run, f"The daily chain for one date without Airflow, in one Spark session: {describe()}.")
    _add_model_choice(p)
    p = add("sql", cmd_sql, "Run a SQL query against the BI database (DuckDB or PostgreSQL).",
            with_ds=False)
    p.add_argument("query", help='e.g. "SELECT segment_name, count(*) FROM segments.user_segments GROUP BY 1"')
    add("info", cmd_info, "Show where everything lives and which partitions exist.", with_ds=False)


def _add_model_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODEL_CHOICES, default=MODEL_CHOICES[0],
                   help="recorded (default): the model version that first labelled ds, so a rerun or backfill "
                   "reproduces its labels (the champion for a date never labelled); champion: relabel with "
                   "the current champion")


def _add_training_commands(add: AddCommand) -> None:
    p = add("train", cmd_train, "Train the segmenter on features.user_features as of ds, register it in "
            "MLflow as challenger and promote it to champion if the gate finds it not worse than the champion "
            "(held-out macro-F1 and day-to-day stability).")
    p.add_argument("--epochs", type=_positive, default=None, help="max epochs (default SEGMENTS_TRAIN_EPOCHS)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default SEGMENTS_SEED)")
    p.add_argument("--method", choices=SEGMENT_METHODS, default=None,
                   help="teacher method (default SEGMENTS_SEGMENT_METHOD)")
    p = add("evaluate", cmd_evaluate, "Ablation: train and evaluate every teacher method (two seeds each) on "
            "ds without registering anything; writes a method x metric markdown table.")
    p.add_argument("--out", default="bench/ABLATION.md", help="markdown file to write (default bench/ABLATION.md)")
    p.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(SEGMENT_METHODS)}")
    p.add_argument("--ensemble", type=int, default=0,
                   help="also evaluate the default method with an N-seed ensemble student (0: skip)")
    p.add_argument("--epochs", type=_positive, default=None, help="max epochs (default SEGMENTS_TRAIN_EPOCHS)")
    p.add_argument("--seed", type=int, default=None, help="first seed (default SEGMENTS_SEED); the retrain uses seed+1")
    p = add("evaluate-future", cmd_evaluate_future, "Do the segments say what customers will do next? "
            "For the customers with a completed order by the cutoff: eta squared of log(1 + future spend) "
            "and churn AUC over the next --horizon days, for segments.user_segments of the cutoff and two "
            "baselines (RFM K-means, RFM quintiles) at the same k; logs an MLflow run and writes a report "
            "with a plot.", with_ds=False)
    p.add_argument("--cutoff", type=_date, required=True, help="date D of the segments (YYYY-MM-DD, UTC day)")
    p.add_argument("--horizon", type=_positive, default=90,
                   help="days after the cutoff whose orders are the outcome (default 90); raw.orders "
                   "must have them")
    p.add_argument("--k", type=_positive, default=None,
                   help="k of the baselines (default: the platform's number of segments, at most 10)")


def _command_group(sub: argparse._SubParsersAction, name: str, text: str) -> argparse._SubParsersAction:
    """``segments NAME ACTION``: a command whose actions are subcommands."""
    p = sub.add_parser(name, help=text, description=text)
    return p.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def _add_model_commands(sub: argparse._SubParsersAction) -> None:
    """``segments model list|promote|rollback``: the registered versions."""
    model_sub = _command_group(sub, "model", "Registered segmenter versions: list, promote, roll back.")
    m = model_sub.add_parser("list", help="versions, aliases, ds, held-out macro-F1, creation time",
                             description="List registered versions with aliases, ds, held-out macro-F1 "
                             "and creation time.")
    m.set_defaults(func=cmd_model_list)
    m = model_sub.add_parser("promote", help="make the challenger (or --version) champion",
                             description="Make the challenger (or --version V) champion without the gate; "
                             "the old champion becomes 'previous'.")
    m.add_argument("--version", default=None, help="version to promote (default: the challenger)")
    m.add_argument("--reason", default="promoted by hand", help="why (stored on the model version)")
    m.set_defaults(func=cmd_model_promote)
    m = model_sub.add_parser("rollback", help="champion := previous, in one step",
                             description="Restore the previous champion in one step ('previous' is "
                             "consumed; undo with promote --version).")
    m.add_argument("--reason", default="rolled back by hand", help="why (stored on the model versions)")
    m.set_defaults(func=cmd_model_rollback)


def _add_bi_commands(sub: argparse._SubParsersAction) -> None:
    """``segments bi grant-reader``: access to the BI database for BI tools."""
    bi_sub = _command_group(sub, "bi", "Access to the BI database for BI tools: a read-only role.")
    b = bi_sub.add_parser("grant-reader", help="a PostgreSQL role that reads schema segments, nothing else",
                          description="Create (if missing) a PostgreSQL role that can read schema segments "
                          "of the BI database and nothing else, tables published later included; safe to "
                          "run again. Needs a PostgreSQL SEGMENTS_BI_URL whose user has CREATEROLE.")
    b.add_argument("role", help="the role name (used as given: case and spaces kept)")
    b.add_argument("--password-env", default=None, metavar="VAR",
                   help="LOGIN role with the password in environment variable VAR (default: a NOLOGIN group "
                   "role to grant to BI users)")
    b.set_defaults(func=cmd_bi_grant_reader)


# Commands that write partitions of their --ds hold that date's lock (core/locks.py) while they run, so a
# second writer of the date fails at once naming the first. `run` holds it across all its stages, so a
# refit (`features --refit-params`, the training DAG) cannot slip in between its features and its labels.
DATE_WRITERS = (cmd_features, cmd_validate, cmd_score, cmd_profiles, cmd_publish, cmd_run)


def _date_lock(args: argparse.Namespace, argv: list[str]) -> contextlib.AbstractContextManager:
    """The write lock of ``args.ds`` for a command that writes that date's partitions; else nothing."""
    if args.func not in DATE_WRITERS:
        return contextlib.nullcontext()
    from core.locks import date_lock

    return date_lock(args.ds, shlex.join(["segments", *argv]))


def _expected(exc: Exception) -> PlatformError | None:
    """``exc`` as the one-line failure to print when it is an expected one (an unreachable MLflow server,
    whichever command met it first); None for a bug."""
    if isinstance(exc, PlatformError):
        return exc
    from core.model_registry import registry_unreachable

    return registry_unreachable(exc)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "mlflow", "great_expectations", "alembic", "urllib3", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _date_lock(args, argv):
            args.func(args)
    except Exception as exc:
        error = _expected(exc)
        if error is None or args.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

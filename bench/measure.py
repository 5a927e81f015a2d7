"""Measuring a child process: wall time, peak memory of its process tree, and Spark's event log.

Stdlib only (psutil is not in the job env): memory is sampled from /proc, the Spark event log is
plain JSON lines. Used by ``bench/bench_features.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")
RESULT_PREFIX = "BENCH_RESULT "  # a worker prints this + one JSON object as its last stdout line


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the ppid follows the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry.name))
    return children


def _tree(root: int) -> list[int]:
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _kind(pid: int) -> str:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "other"
    if comm == "java":
        return "jvm"
    return "python" if comm.startswith("python") or comm == "segments" else "other"


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """user + system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat)
    except (OSError, IndexError, ValueError):
        return 0.0


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class TreeMemory:
    """Peak resident memory and CPU time of a process tree, sampled every ``interval`` seconds.

    CPU is the sum over every process seen of its last sampled CPU time, so the JVM that pyspark starts
    is counted even though nobody waits for it (getrusage(RUSAGE_CHILDREN) would miss it)."""

    root: int
    interval: float = 0.2
    peak_total: int = 0
    peak_by_kind: dict[str, int] = field(default_factory=dict)
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        by_kind: dict[str, int] = defaultdict(int)
        for pid in _tree(self.root):
            by_kind[_kind(pid)] += _rss_bytes(pid)
            self.cpu_by_pid[pid] = max(self.cpu_by_pid.get(pid, 0.0), _cpu_seconds(pid))
        self.peak_total = max(self.peak_total, sum(by_kind.values()))
        for kind, rss in by_kind.items():
            self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0), rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "TreeMemory":
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    wall_s: float
    peak_mb: float
    peak_jvm_mb: float
    peak_python_mb: float
    cpu_s: float  # user + system CPU of the whole process tree
    load_before: float  # 1-minute load average when the run started (the machine is shared)
    result: dict  # what the worker printed after RESULT_PREFIX (empty for commands that print none)


class ChildFailed(RuntimeError):
    pass


def run_measured(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None) -> Measured:
    """Run ``cmd`` (in ``cwd``) to completion (output to ``log_path``), timing it and sampling its memory."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    mb = 1024 * 1024
    load_before = os.getloadavg()[0]
    with open(log_path, "w") as log:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True, cwd=cwd)
        with TreeMemory(proc.pid) as memory:
            stdout, _ = proc.communicate()
        wall = time.monotonic() - start
        log.write(stdout)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-25:])
        raise ChildFailed(f"{' '.join(cmd)} exited with {proc.returncode}; log {log_path}:\n{tail}")
    result: dict = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    return Measured(
        wall_s=wall,
        peak_mb=memory.peak_total / mb,
        peak_jvm_mb=memory.peak_by_kind.get("jvm", 0) / mb,
        peak_python_mb=memory.peak_by_kind.get("python", 0) / mb,
        cpu_s=sum(memory.cpu_by_pid.values()),
        load_before=load_before,
        result=result,
    )


# --- Spark event log -----------------------------------------------------------------------------
def spark_event_log_env(log_dir: Path) -> dict[str, str]:
    """Environment that makes a pyspark-launched JVM write an uncompressed event log to ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"file://{log_dir}",
        "spark.eventLog.compress": "false",
    }
    args = " ".join(f"--conf {k}={v}" for k, v in conf.items())
    return {"PYSPARK_SUBMIT_ARGS": f"{args} pyspark-shell"}


_PLAN_NODES = ("Exchange", "Expand", "SortMergeJoin", "BroadcastHashJoin", "ShuffledHashJoin",
               "HashAggregate", "ObjectHashAggregate", "SortAggregate", "Sort", "Window", "Union")


def _walk(info: dict):
    yield info
    for child in info.get("children", []):
        yield from _walk(child)


def _node_counts(plan_info: dict) -> dict[str, int]:
    """How many of the interesting physical operators the (final, post-AQE) plan holds."""
    counts: dict[str, int] = defaultdict(int)
    for node in _walk(plan_info):
        if node.get("nodeName") in _PLAN_NODES:
            counts[node["nodeName"]] += 1
    return dict(counts)


def _scanned_table(scan: str, table_paths: dict[str, str]) -> str:
    """The table a parquet scan node reads, from its location ("?" if none or several match). Spark cuts
    long locations ("…/features/user_category_w..."), so a cut one matches the tables it is a prefix of."""
    found = re.search(r"InMemoryFileIndex\([^)]*\)\[(?:file:)?([^,\]]+)", scan)
    if not found:
        return "?"
    location = found.group(1)
    if location.endswith("..."):
        matches = [t for t, p in table_paths.items() if p.startswith(location[:-3])]
    else:
        matches = [t for t, p in table_paths.items()
                   if location.rstrip("/") == p.rstrip("/") or location.startswith(p.rstrip("/") + "/")]
    return matches[0] if len(matches) == 1 else "?"


def summarize_event_log(paths: list[Path], table_paths: dict[str, str]) -> dict:
    """Stages (time, tasks, input, shuffle, spill) and SQL plans (node counts, scans) of one app.

    ``table_paths`` maps a table name to its directory, to label the parquet scans. For each scan we
    report its PartitionFilters, the partitions and rows it read (SQL metrics from the task updates).
    """
    # Long on purpose: one pass over the event log, one branch per event kind it reads.
    stages: list[dict] = []
    plans: dict[int, dict] = {}  # execution id -> latest (final, after AQE) sparkPlanInfo
    descriptions: dict[int, str] = {}
    accum_total: dict[int, int] = defaultdict(int)
    app_start = app_end = None
    lines = (line for path in paths for line in path.read_text().splitlines())
    for line in lines:
        event = json.loads(line)
        kind = event.get("Event", "")
        if kind == "SparkListenerApplicationStart":
            app_start = event["Timestamp"]
        elif kind == "SparkListenerApplicationEnd":
            app_end = event["Timestamp"]
        elif kind.endswith("SparkListenerSQLExecutionStart") or kind.endswith("SparkListenerSQLAdaptiveExecutionUpdate"):
            plans[event["executionId"]] = event["sparkPlanInfo"]
            if "description" in event:
                descriptions[event["executionId"]] = event["description"]
        elif kind.endswith("SparkListenerDriverAccumUpdates"):
            for acc_id, value in event["accumUpdates"]:
                accum_total[acc_id] += value
        elif kind == "SparkListenerTaskEnd":
            for acc in event.get("Task Info", {}).get("Accumulables", []):
                if isinstance(acc.get("Update"), (int, str)) and str(acc["Update"]).lstrip("-").isdigit():
                    accum_total[acc["ID"]] += int(acc["Update"])
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            metrics = {a["Name"]: a.get("Value") for a in info.get("Accumulables", [])}

            def metric(name: str) -> int:
                value = metrics.get(f"internal.metrics.{name}", 0)
                return int(value) if str(value).lstrip("-").isdigit() else 0

            stages.append({
                "stage": info["Stage ID"],
                "tasks": info["Number of Tasks"],
                "seconds": round((info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000, 2),
                "task_cpu_s": round(metric("executorCpuTime") / 1e9, 1),
                "gc_s": round(metric("jvmGCTime") / 1000, 1),
                "input_rows": metric("input.recordsRead"),
                "input_mb": round(metric("input.bytesRead") / 2**20, 1),
                "shuffle_write_mb": round(metric("shuffle.write.bytesWritten") / 2**20, 1),
                "shuffle_write_rows": metric("shuffle.write.recordsWritten"),
                "shuffle_read_mb": round((metric("shuffle.read.localBytesRead")
                                          + metric("shuffle.read.remoteBytesRead")) / 2**20, 1),
                "spill_mb": round(metric("diskBytesSpilled") / 2**20, 1),
                "output_rows": metric("output.recordsWritten"),
                "name": info.get("Stage Name", ""),
            })
    executions = []
    for exec_id, info in sorted(plans.items()):
        scans = []
        for node in _walk(info):
            if not node.get("nodeName", "").startswith("Scan parquet"):
                continue
            text = node.get("simpleString", "")
            table = _scanned_table(text, table_paths)
            filters = re.search(r"PartitionFilters: \[(.*?)\]?, PushedFilters", text)
            metric_ids = {m["name"]: m["accumulatorId"] for m in node.get("metrics", [])}
            scans.append({
                "table": table,
                "partition_filters": filters.group(1) if filters else "",
                "partitions_read": accum_total.get(metric_ids.get("number of partitions read", -1), 0),
                "files_read": accum_total.get(metric_ids.get("number of files read", -1), 0),
                "rows": accum_total.get(metric_ids.get("number of output rows", -1), 0),
            })
        executions.append({"execution": exec_id, "description": descriptions.get(exec_id, ""),
                           "nodes": _node_counts(info), "scans": scans})
    return {
        "app_seconds": round((app_end - app_start) / 1000, 1) if app_start and app_end else None,
        "stages": stages,
        "executions": executions,
    }


def latest_event_log(log_dir: Path) -> list[Path]:
    """The newest app's event log files, in order (Spark 4 writes a directory of rolled files)."""
    apps = sorted(log_dir.iterdir(), key=lambda p: p.stat().st_mtime)
    if not apps:
        raise FileNotFoundError(f"no Spark event log in {log_dir}")
    app = apps[-1]
    if app.is_file():
        return [app]
    parts = [p for p in app.iterdir() if p.name.startswith("events_")]
    return sorted(parts, key=lambda p: int(p.name.split("_")[1]))

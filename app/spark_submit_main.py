"""Application file for spark-submit: ``spark-submit app/spark_submit_main.py features --ds D``.

Airflow's SparkSubmitOperator submits this file; it runs the same ``segments`` subcommand as the CLI,
with the master and resources of the submit command.
"""

import sys
from pathlib import Path

# spark-submit puts this file's folder first on sys.path; drop it so that module names inside app/
# (features, session, ...) cannot shadow installed packages.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]

from app.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

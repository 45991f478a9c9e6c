#!/bin/bash
# soak: bench/soak for one minute: inserts through the classify trigger into a captured table,
# predictions, a trainer deploying every ~20 s and a streaming evaluation, while the broker is
# killed and restarted, PostgreSQL is stopped with -m immediate and restarted, and the CDC
# worker is terminated; no committed row may be missing from the topic, no backend may crash,
# no error but the faults' own.  SOAK_MINUTES=5 makes it the full soak.
# Twice: mnist_ml.cdc_delivery = at_least_once (duplicates counted), then exactly_once (read
# committed, a duplicate fails).
SOAK_DELIVERY=at_least_once bash "$(dirname "$0")/../../bench/soak" "${SOAK_MINUTES:-1}"
rc=$?
SOAK_DELIVERY=exactly_once bash "$(dirname "$0")/../../bench/soak" "${SOAK_MINUTES:-1}"
exit $((rc | $?))

#!/bin/bash
# cdc_faults: nothing lost across a 10 s broker outage and across pg_ctl -m immediate, both in
# the middle of a stream of 10,000 real digits (duplicates allowed, counted and printed).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

src=cdc_faults_src
cdc_staging "$src"
cdc_wait_state streaming 60

# ---- broker down for 10 s mid-stream
t=mnist_cdc_outage
broker_create_topic "tf.public.$t" 16 || fail "create topic"
q "DROP TABLE IF EXISTS $t"
q "CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"
cdc_writer "$src" "$t" 100 0.15 &
writer=$!
sleep 3
broker_down || fail "broker_down"
wait_for "[ \"\$(q 'SELECT broker_reachable FROM mnist_cdc_status')\" = f ]" 9 \
	"status shows the broker unreachable"
sleep $((10 - 1))
acked_during=$(q "SELECT acknowledged FROM mnist_cdc_status")
broker_up || fail "broker_up"
wait "$writer"
cdc_wait_caught_up 180 "all confirmed after the broker came back"
check_eq "$(q 'SELECT broker_reachable, acknowledged > '"$acked_during"' FROM mnist_cdc_status')" "t|t" \
	"status: broker reachable again, acknowledgements resumed"
cdc_expected "$t" "$TEST_TMP/outage.expected"
check_eq "$(wc -l <"$TEST_TMP/outage.expected")" 10000 "writer committed 10,000 rows"
cdc_topic_pairs "tf.public.$t" "$TEST_TMP/outage.actual"
cdc_compare "$TEST_TMP/outage.expected" "$TEST_TMP/outage.actual" "broker outage" dups-allowed
check_topic_intact "tf.public.$t"

# ---- immediate stop (crash) mid-stream
t=mnist_cdc_crash
broker_create_topic "tf.public.$t" 16 || fail "create topic"
q "DROP TABLE IF EXISTS $t"
q "CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"
cdc_writer "$src" "$t" 100 0.1 &
writer=$!
sleep 4
pg_stop_immediate || fail "pg_ctl -m immediate"
sleep 1
pg_start || fail "pg_start after the crash"
wait "$writer"
cdc_wait_state streaming 60
cdc_wait_caught_up 180 "all confirmed after the restart"
cdc_expected "$t" "$TEST_TMP/crash.expected"
echo "  rows committed (a batch retried across the crash may be there twice): $(wc -l <"$TEST_TMP/crash.expected")"
cdc_topic_pairs "tf.public.$t" "$TEST_TMP/crash.actual"
cdc_compare "$TEST_TMP/crash.expected" "$TEST_TMP/crash.actual" "immediate stop" dups-allowed
check_topic_intact "tf.public.$t"

q "DROP TABLE $src, mnist_cdc_outage, mnist_cdc_crash"

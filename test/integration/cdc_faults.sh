#!/bin/bash
# cdc_faults: nothing lost across a broker killed (SIGKILL) for 10 s and restarted on its data,
# a broker frozen (SIGSTOP) for 10 s, and pg_ctl -m immediate, each in the middle of a stream of
# 10,000 real digits (duplicates allowed, counted and printed).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

src=cdc_faults_src
cdc_staging "$src"
cdc_wait_state streaming 60

# fault_table NAME: a fresh captured table and its 16-partition topic
fault_table() {
	broker_create_topic "tf.public.$1" 16 || fail "create topic tf.public.$1"
	q "DROP TABLE IF EXISTS $1"
	q "CREATE TABLE $1 (id serial PRIMARY KEY, label smallint, pixels bytea)"
}

# fault_check NAME MSG: every committed row is in the topic (duplicates counted), topic intact
fault_check() {
	cdc_expected "$1" "$TEST_TMP/$1.expected"
	echo "  rows committed (a batch retried across a crash may be there twice): $(wc -l <"$TEST_TMP/$1.expected")"
	cdc_topic_pairs "tf.public.$1" "$TEST_TMP/$1.actual"
	cdc_compare "$TEST_TMP/$1.expected" "$TEST_TMP/$1.actual" "$2" dups-allowed
	check_topic_intact "tf.public.$1"
}

# ---- broker killed mid-stream, restarted 10 s later on the same data
t=mnist_cdc_outage
fault_table "$t"
cdc_writer "$src" "$t" 100 0.15 &
writer=$!
sleep 3
broker_kill || fail "broker_kill"
down_at=$SECONDS
wait_for "[ \"\$(q 'SELECT broker_reachable FROM mnist_cdc_status')\" = f ]" 9 \
	"status shows the broker unreachable"
sleep $((10 - (SECONDS - down_at)))
acked_during=$(q "SELECT acknowledged FROM mnist_cdc_status")
broker_restart || fail "broker_restart"
wait "$writer"
cdc_wait_caught_up 180 "all confirmed after the broker came back"
check_eq "$(q 'SELECT broker_reachable, acknowledged > '"$acked_during"' FROM mnist_cdc_status')" "t|t" \
	"status: broker reachable again, acknowledgements resumed"
check_eq "$(q "SELECT count(*) FROM $t")" 10000 "writer committed 10,000 rows"
fault_check "$t" "broker killed"

# ---- broker frozen mid-stream (connections open, no answers) for 10 s
t=mnist_cdc_frozen
fault_table "$t"
cdc_writer "$src" "$t" 100 0.1 &
writer=$!
sleep 3
broker_freeze || fail "broker_freeze"
sleep 2
lsn=$(q "SELECT pg_current_wal_lsn()")	# rows were committed since the freeze began
sleep 8
check_eq "$(q "SELECT confirmed_lsn < '$lsn' FROM mnist_cdc_status")" t \
	"nothing written during the freeze is confirmed while the broker is frozen"
broker_thaw || fail "broker_thaw"
wait "$writer"
cdc_wait_caught_up 180 "all confirmed after the broker thawed"
fault_check "$t" "broker frozen"

# ---- lag_bytes counts what the broker has not acknowledged: 30,000 rows in one transaction
# (more than the producer's queue holds) committed while the broker is dead
t=mnist_cdc_lag
fault_table "$t"
cdc_wait_caught_up 60 "caught up before the outage"
broker_kill || fail "broker_kill"
produced0=$(q "SELECT produced FROM mnist_cdc_status")
before=$(q "SELECT pg_current_wal_lsn()")
q "INSERT INTO $t (label, pixels) SELECT label, pixels FROM $src, generate_series(1, 3) ORDER BY id"
txn_bytes=$(q "SELECT pg_current_wal_lsn() - '$before'")
wait_for "[ \"\$(q 'SELECT produced - $produced0 >= 19000 FROM mnist_cdc_status')\" = t ]" 60 \
	"the worker decoded the transaction and filled its queue"
# (the transaction's first record comes a little after $before: allow 10%; a lag that hides
# the transaction is a few kB)
check_eq "$(q "SELECT lag_bytes >= $txn_bytes * 0.9 FROM mnist_cdc_status")" t \
	"lag_bytes ($(q 'SELECT lag_bytes FROM mnist_cdc_status')) covers the unacknowledged transaction ($txn_bytes bytes of WAL)"
broker_restart || fail "broker_restart"
cdc_wait_caught_up 180 "all confirmed after the broker came back"
check_eq "$(q "SELECT lag_bytes < 1000000 FROM mnist_cdc_status")" t "lag_bytes back to nearly 0"
fault_check "$t" "30,000 rows in one transaction across an outage"

# ---- immediate stop (crash) mid-stream
t=mnist_cdc_crash
fault_table "$t"
cdc_crash_midstream "$src" "$t" 100
fault_check "$t" "immediate stop"

q "DROP TABLE $src, mnist_cdc_outage, mnist_cdc_frozen, mnist_cdc_lag, mnist_cdc_crash"

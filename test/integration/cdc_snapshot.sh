#!/bin/bash
# cdc_snapshot: when the worker creates its slot, rows already in captured tables are sent
# (initial snapshot consistent with the slot), rows committed during the snapshot follow
# without gap, and a crash in the middle of the snapshot redoes it.  Also: CDC off idles and
# releases the slot, mnist_cdc_drop_slot.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

t=mnist_cdc_snap
topic=tf.public.$t
at_exit "q \"ALTER SYSTEM RESET mnist_ml.cdc_tables\" >/dev/null; q 'SELECT pg_reload_conf()' >/dev/null"
broker_create_topic "$topic" 16 || fail "create $topic"
cdc_wait_state streaming 60

# CDC off: the worker idles and lets the slot go; drop the slot
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")
cdc_set cdc_tables ''
cdc_wait_state off 30
check_eq "$(q "SELECT acknowledged >= $acked0 FROM mnist_cdc_status")" t \
	"status counters survive a worker restart"
check_eq "$(q 'SELECT mnist_cdc_drop_slot()')" t "mnist_cdc_drop_slot drops the idle slot"
check_eq "$(q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'mnist_ml_cdc'")" 0 \
	"no slot left"

# 10,000 rows exist before the slot; the broker is down so the snapshot cannot finish
q "DROP TABLE IF EXISTS $t"
cdc_load_digits "$t"
broker_kill || fail "broker_kill"
cdc_set cdc_tables "public.$t"
cdc_wait_state "initial snapshot" 60
out=$(q 'SELECT mnist_cdc_drop_slot()' 2>&1)
case $out in
*"in use"*) pass "mnist_cdc_drop_slot refuses a slot in use" ;;
*) fail "mnist_cdc_drop_slot on an active slot: $out" ;;
esac
# (the rows are queued once the worker gave up looking the topic up, kafka_timeout_ms at most)
wait_for "grep -q 'initial snapshot of public.$t: 10000 rows' \"\$HARNESS_PG_LOG\"" 60 \
	"the snapshot's rows are queued while the broker is down"
pg_stop_immediate || fail "pg_ctl -m immediate"
pg_start || fail "pg_start"

# the ephemeral slot died with the crash: the snapshot is taken again (still stalled);
# rows committed meanwhile come after it, then streaming goes on
cdc_wait_state "initial snapshot" 60
q "INSERT INTO $t (label, pixels) SELECT label, pixels FROM $t WHERE id <= 300"
broker_restart || fail "broker_restart"
cdc_wait_state streaming 120
q "INSERT INTO $t (label, pixels) SELECT label, pixels FROM $t WHERE id > 9700 AND id <= 10000"
cdc_wait_caught_up 120 "snapshot and stream confirmed"
check_eq "$(grep -c 'initial snapshot of public.mnist_cdc_snap: 10000 rows' "$HARNESS_PG_LOG")" 2 \
	"snapshot taken twice (before and after the crash)"
check_eq "$(q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'mnist_ml_cdc' AND NOT temporary")" 1 \
	"slot persistent after the snapshot"
cdc_expected "$t" "$TEST_TMP/snap.expected"
check_eq "$(wc -l <"$TEST_TMP/snap.expected")" 10600 "table holds 10,600 rows"
cdc_topic_pairs "$topic" "$TEST_TMP/snap.actual"
cdc_compare "$TEST_TMP/snap.expected" "$TEST_TMP/snap.actual" "initial snapshot then stream" dups-allowed
check_eq "$(cut -f5 "$TEST_TMP/snap.actual.dump" | grep -c ',op=r,')" 10000 "snapshot reads carry op=r"
check_topic_intact "$topic"

q "DROP TABLE $t"

# PostgreSQL 15.19+: without mnist_ml in output_plugin_libraries the worker says what to do
if [ -n "$(q "SELECT 1 FROM pg_settings WHERE name = 'output_plugin_libraries'")" ]; then
	at_exit "q 'ALTER SYSTEM RESET output_plugin_libraries' >/dev/null; q 'SELECT pg_reload_conf()' >/dev/null"
	q "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding"
	cdc_set cdc_tables 'public.mnist_cdc_none'
	cdc_wait_state blocked 30
	check_eq "$(q 'SELECT last_error FROM mnist_cdc_status')" \
		"output plugin mnist_ml is not listed in output_plugin_libraries" "status names the missing setting"
	check_eq "$(grep -c 'HINT:  Add mnist_ml to output_plugin_libraries' "$HARNESS_PG_LOG")" 1 \
		"the log gives the fix"
	q "ALTER SYSTEM RESET output_plugin_libraries"
fi
cdc_reset cdc_tables
cdc_wait_state streaming 60

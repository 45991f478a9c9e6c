#!/bin/bash
# online_exactly_once: end to end, from a committed row to a trained model, exactly once.  CDC
# with mnist_ml.cdc_delivery = exactly_once streams a captured table of real digits to its
# topic; an online learning job started on that topic (from its start, before any row exists,
# rounds of at least 1 row every second) trains on it while rows are inserted in batches across
# the CDC worker killed (SIGKILL) in the middle of a Kafka transaction, pg_ctl -m immediate
# mid-stream, the broker killed (SIGKILL) and restarted mid-stream, and the online learning
# worker killed (SIGKILL) in the middle of a round (trained, its transaction waiting to store
# it).  Once the job consumed everything: the rounds' rows add up to the rows of the table
# (sum(rows + skipped) = count(*), 0 skipped, 0 lost), the topic holds as many committed
# messages (Kafka's Java console consumer reading committed), and each round starts where the
# previous one ended.
#
# ONLINE_EO_DELIVERY=at_least_once runs the same scenario with at-least-once CDC, a control
# that is expected to fail (the CDC faults resend rows, and the job trains on them twice).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"
source "$(dirname "$0")/topic_lib.sh"

S=online_eo			# schema of the validation and base tables (not captured)
M=online_eo			# the job's model
src=online_eo_src	# uncaptured staging table: the writer's rows
t=mnist_online_eo	# the captured table
topic=tf.public.$t
delivery=${ONLINE_EO_DELIVERY:-exactly_once}

cleanup() {
	online_cleanup "$M" $S
	local k
	for k in cdc_delivery cdc_batch_ms cdc_batch_rows; do cdc_reset $k >/dev/null 2>&1; done
	q "DROP TABLE IF EXISTS $src, $t" >/dev/null 2>&1
}
at_exit cleanup
cleanup
cdc_wait_state streaming 60

# the digits: a validation table and a base model, and 2,000 real train digits to insert
online_data $S
q "SET mnist_ml.progress = off; SELECT mnist_train('$S.base', '$M', epochs => 1, seed => 1)" >/dev/null ||
	fail "the base model"
cdc_staging $src
q "DELETE FROM $src WHERE id > 2000"

# cdc_restarted OLDPID MSG: a new CDC worker streams
cdc_restarted() {
	wait_for "[ \"\$(q 'SELECT state = '\''streaming'\'' AND pid <> $1 FROM mnist_cdc_status' 2>/dev/null)\" = t ]" 120 "$2"
}

# CDC in the mode under test; the captured table and its 4-partition topic
if [ "$(q "SHOW mnist_ml.cdc_delivery")" != "$delivery" ]; then
	pid=$(q "SELECT pid FROM mnist_cdc_status")
	cdc_set cdc_delivery "$delivery"
	cdc_restarted "$pid" "CDC streams with cdc_delivery = $delivery"
fi
check_eq "$(q "SHOW mnist_ml.cdc_delivery")" "$delivery" "mnist_ml.cdc_delivery = $delivery"
broker_create_topic $topic 4 || fail "create topic $topic"
q "CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"

# the job, from the start of the (empty) topic, before any row is inserted
q "SELECT mnist_online_start('$M', '$topic', '$S.val', every => '1 second', min_rows => 1, max_rows => 1000,
	epochs => 1, start_from => 'earliest')" >/dev/null || fail "mnist_online_start"
status() { q "SELECT $1 FROM mnist_online_status WHERE model_name = '$M'"; }
consumed() { q "SELECT coalesce(sum(rows + skipped), 0) FROM mnist_online_rounds WHERE model_name = '$M'"; }
wait_for "[ \"\$(status 'offsets IS NOT NULL')\" = t ]" 60 "the job stored its start offsets"

server_back() { wait_for "q 'SELECT 1' >/dev/null 2>&1" 120 "$1"; }
# all_consumed PHASE: CDC confirmed every committed row and the job's rounds consumed as many
# rows as the table holds (exactly: more would be rows trained twice)
all_consumed() {
	local rows
	rows=$(q "SELECT count(*) FROM $t")
	cdc_wait_caught_up 240 "$1 CDC confirmed every committed row"
	wait_for "[ \"\$(consumed)\" -ge $rows ]" 240 "$1 the job's rounds consumed the $rows rows committed"
	check_eq "$(consumed)" "$rows" "$1 sum(rows + skipped) of the rounds = count(*) of $t"
}
# rows_reach N MSG: the writer committed at least N rows of the table (it is mid-stream)
rows_reach() { wait_for "[ \"\$(q 'SELECT count(*) >= $1 FROM $t' 2>/dev/null)\" = t ]" 60 "$2"; }

# ---- 1. the CDC worker killed (SIGKILL) in the middle of a Kafka transaction that does not
# close on its own (PostgreSQL restarts all its processes, the online worker's too)
cdc_set cdc_batch_ms 600000
cdc_set cdc_batch_rows 10000000
cdc_wait_caught_up 60 "1. CDC caught up before the long batch"
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")
cdc_writer $src $t 20 0.1 &
writer=$!
wait_for "[ \"\$(q 'SELECT acknowledged - $acked0 >= 500 FROM mnist_cdc_status')\" = t ]" 60 \
	"1. the broker acknowledged 500 messages of the open batch"
echo "  1. rows consumed by the job before the kill: $(consumed)"
pid=$(q "SELECT pid FROM mnist_cdc_status")
kill -KILL "$pid" || fail "kill -KILL the CDC worker"
server_back "1. the server is back after the CDC worker was killed"
cdc_reset cdc_batch_ms
cdc_reset cdc_batch_rows
wait "$writer"
cdc_restarted "$pid" "1. a new CDC worker streams"
check_eq "$(q "SELECT count(*) FROM $t")" 2000 "1. the writer committed its 2,000 rows"
all_consumed "1."

# ---- 2. pg_ctl -m immediate mid-stream
cdc_crash_midstream $src $t 20
check_eq "$(q "SELECT count(*) FROM $t")" 4000 "2. the writer committed its 2,000 rows"
all_consumed "2."

# ---- 3. the broker killed (SIGKILL) mid-stream, restarted 5 s later on the same data
cdc_writer $src $t 20 0.1 &
writer=$!
rows_reach 4400 "3. the writer is mid-stream"
broker_kill || fail "broker_kill"
sleep 5
broker_restart || fail "broker_restart"
wait "$writer"
check_eq "$(q "SELECT count(*) FROM $t")" 6000 "3. the writer committed its 2,000 rows"
all_consumed "3."

# ---- 4. the online learning worker killed (SIGKILL) in the middle of a round: a session
# holds the job's row, so the round, trained, waits to store itself (after the broker outage,
# the job runs again: no state change of its own waits for the lock)
wait_for "[ \"\$(status state)\" = running ]" 60 "4. the job runs"
worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mnist_ml online'"; }
PGAPPNAME=online_eo_locker psql -X -qAt -c "BEGIN" \
	-c "SELECT 1 FROM mnist_online_jobs WHERE model_name = '$M' FOR UPDATE" \
	-c "SELECT pg_sleep(300)" -c "COMMIT" >/dev/null 2>&1 &
locker=$!
wait_for "[ \"\$(q \"SELECT wait_event FROM pg_stat_activity WHERE application_name = 'online_eo_locker'\")\" = PgSleep ]" 30 \
	"4. a session holds the job's row"
cdc_writer $src $t 20 0.1 &
writer=$!
wait_for "[ \"\$(q \"SELECT wait_event_type = 'Lock' AND query LIKE 'mnist_ml online: storing a round%'
	FROM pg_stat_activity WHERE backend_type = 'mnist_ml online'\")\" = t ]" 120 \
	"4. a trained round waits to store itself"
rounds0=$(status rounds)
kill -KILL "$(worker_pid)" || fail "kill -KILL the online learning worker"
server_back "4. the server is back after the online worker was killed"
wait "$locker"
wait "$writer"
check_eq "$(q "SELECT count(*) FROM $t")" 8000 "4. the writer committed its 2,000 rows"
echo "  4. rounds stored before the kill: $rounds0"

# ---- everything consumed: the rounds' rows add up to the rows committed
all_consumed "4."
rows=$(q "SELECT count(*) FROM $t")
kafka_dump $topic "$TEST_TMP/topic.dump" read_committed || fail "read $topic committed"
echo "  $(status "'rounds: ' || rounds || ', rows consumed: ' || rows_consumed || ', state: ' || state")"
check_eq "$(wc -l <"$TEST_TMP/topic.dump")" "$rows" "$topic: $rows committed messages, as many as rows committed"
# (the Java consumer read for 10 s more: a round on rows trained twice would have come by now)
check_eq "$(consumed)" "$rows" "each committed row trained exactly once: sum(rows + skipped) of the rounds = count(*) of $t"
check_eq "$(q "SELECT sum(skipped) || ' ' || sum(lost) FROM mnist_online_rounds WHERE model_name = '$M'")" "0 0" \
	"0 messages skipped, 0 lost"
check_eq "$(q "SELECT bool_and(r2.from_offsets = r1.to_offsets) AND count(*) = (SELECT count(*) - 1 FROM mnist_online_rounds WHERE model_name = '$M')
	FROM mnist_online_rounds r1 JOIN mnist_online_rounds r2 ON r2.model_name = r1.model_name
	AND r2.id = (SELECT min(id) FROM mnist_online_rounds WHERE model_name = r1.model_name AND id > r1.id)
	WHERE r1.model_name = '$M'")" t "each round starts at the offsets the previous one stored"
check_eq "$(status state)" running "the job runs"

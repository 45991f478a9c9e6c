#!/bin/bash
# cdc_topics: a captured table whose topic is missing or refused, on a broker that never creates
# topics by itself (auto.create.topics.enable=false).  The worker creates a missing topic with
# the Admin API from mnist_ml.cdc_topic_partitions / cdc_topic_replication_factor; when creation
# is refused (by the broker, or mnist_ml.cdc_create_topics = off) the stream holds at the
# table's first row, loudly (one WARNING per reason, mnist_cdc_status.waiting_*), confirms
# nothing past it, never restarts or resends the other tables' rows, and goes on once the topic
# exists.  The initial snapshot skips a table whose topic name Kafka refuses as streaming does
# (WARNING, counted), without a restart.  last_error is cleared once the broker acknowledges
# again.  mnist_cdc_snapshot counts the rows it skips.
#
# The paths where one table's failure does restart the worker (a delivery the broker refuses)
# are listed, with what happens to the other tables' rows, in the README ("Change data capture
# to Kafka", "What one table's failure does to the worker").
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

flow=mnist_cdc_flow
held=mnist_cdc_held
auto=mnist_cdc_auto
dom=mnist_cdc_dom
bad=$'mnist_cdc_bad\tY'
at_exit "for s in kafka_properties cdc_create_topics cdc_topic_partitions cdc_topic_replication_factor cdc_tables; do
	q \"ALTER SYSTEM RESET mnist_ml.\$s\" >/dev/null; done; q 'SELECT pg_reload_conf()' >/dev/null"
q "DROP TABLE IF EXISTS $flow, $held, $auto, $dom, \"$bad\""

# rows ROWS FROM TABLE: inserts ROWS distinct images (label i % 10) in one transaction
rows() {
	q "INSERT INTO $2 (label, pixels) SELECT i % 10, decode(lpad(to_hex(i % 256), 2, '0') || repeat('00', 783), 'hex')
		FROM generate_series(1, $1) i"
}
worker_pid() { q 'SELECT pid FROM mnist_cdc_status'; }
log_since() { tail -c +$(($1 + 1)) "$HARNESS_PG_LOG"; }

# librdkafka fails messages to a missing topic after topic.metadata.propagation.max.ms (30 s by
# default): 3 s here, so that a worker that sends to a missing topic shows within the windows
pid0=$(worker_pid)
cdc_set kafka_properties 'topic.metadata.propagation.max.ms=3000'
wait_for "[ \"\$(q 'SELECT state FROM mnist_cdc_status')\" = streaming ] && [ \"\$(worker_pid)\" != '$pid0' ]" 60 \
	"the worker restarted with the new properties"

# ---- a missing topic is created with the Admin API, as the settings say
cdc_set cdc_topic_partitions 3
log0=$(stat -c %s "$HARNESS_PG_LOG")
q "CREATE TABLE $auto (id serial PRIMARY KEY, label smallint, pixels bytea)"
rows 5 $auto
cdc_wait_caught_up 60 "rows of a table without a topic confirmed"
check_eq "$(topic_total tf.public.$auto)" 5 "its topic was created and holds its 5 rows"
check_eq "$(broker_watermarks tf.public.$auto | wc -w)" 3 "with mnist_ml.cdc_topic_partitions = 3 partitions"
check_eq "$(log_since "$log0" | grep -c "created topic \"tf.public.$auto\" (partitions 3, replication factor -1")" 1 \
	"the log says so"

# ---- creation refused by the broker (a replication factor a 1-node cluster cannot have):
# the stream holds at the table's first row; the other table's rows are neither lost nor resent
pid1=$(worker_pid)
log1=$(stat -c %s "$HARNESS_PG_LOG")
cdc_set cdc_topic_replication_factor 3
broker_create_topic tf.public.$flow 4 || fail "create tf.public.$flow"
q "CREATE TABLE $flow (id serial PRIMARY KEY, label smallint, pixels bytea);
   CREATE TABLE $held (id serial PRIMARY KEY, label smallint, pixels bytea)"
rows 5 $flow
cdc_wait_caught_up 60 "the first 5 rows of $flow confirmed"
rows 3 $held
after_held=$(q "SELECT pg_current_wal_lsn()")
rows 5 $flow
wait_for "[ \"\$(q 'SELECT waiting_table FROM mnist_cdc_status')\" = public.$held ]" 30 \
	"mnist_cdc_status.waiting_table names the held table"
check_eq "$(q "SELECT waiting_reason LIKE '%refused to create the topic: INVALID_REPLICATION_FACTOR%', waiting_since <= now() FROM mnist_cdc_status")" \
	"t|t" "waiting_reason says why: $(q 'SELECT waiting_reason FROM mnist_cdc_status')"
# longer than librdkafka's propagation time plus the worker's restart delay (3 s + 2 s)
sleep 8
check_eq "$(worker_pid)" "$pid1" "the worker did not restart"
check_eq "$(log_since "$log1" | grep -c 'exited with exit code')" 0 "no worker exit in the log"
check_eq "$(topic_total tf.public.$flow)" 5 "the other table's rows before the held one: sent once, not resent"
check_eq "$(q "SELECT confirmed_lsn < '$after_held' FROM mnist_cdc_status")" t \
	"nothing from the held table's transaction on is confirmed to the slot"
check_eq "$(log_since "$log1" | grep -c "WARNING:  mnist_ml change data capture waits for the topic \"tf.public.$held\" of table public.$held: the broker refused")" 1 \
	"one WARNING names the table, its topic and the reason"

# ---- creation off: the same hold, with its own reason; the topic made by an operator ends it
cdc_set cdc_create_topics off
wait_for "q 'SELECT waiting_reason FROM mnist_cdc_status' | grep -q 'does not exist and mnist_ml.cdc_create_topics is off'" 20 \
	"waiting_reason: creation is off"
broker_create_topic tf.public.$held 2 || fail "create tf.public.$held"
wait_for "[ -z \"\$(q 'SELECT waiting_table FROM mnist_cdc_status')\" ]" 30 "the hold ends once the topic exists"
cdc_wait_caught_up 60 "everything confirmed after the hold"
check_eq "$(topic_total tf.public.$held)" 3 "the held table's 3 rows are sent"
kafka_dump tf.public.$flow "$TEST_TMP/flow.dump" || fail "kafka_dump tf.public.$flow"
check_eq "$(wc -l <"$TEST_TMP/flow.dump"):$(sed -E 's/.*pk=//' "$TEST_TMP/flow.dump" | sort -u | wc -l)" "10:10" \
	"the other table's 10 rows, each exactly once"
check_eq "$(worker_pid)" "$pid1" "still the same worker"
check_eq "$(log_since "$log1" | grep -c 'exited with exit code')" 0 "still no worker exit in the log"
check_eq "$(log_since "$log1" | grep -c 'WARNING:  mnist_ml change data capture waits for the topic')" 2 \
	"one WARNING per reason"
cdc_reset cdc_create_topics
cdc_reset cdc_topic_replication_factor

# ---- the initial snapshot skips a table whose topic name Kafka refuses, as streaming does
cdc_set cdc_tables ''
cdc_wait_state off 30
check_eq "$(q 'SELECT mnist_cdc_drop_slot()')" t "slot dropped"
broker_create_topic tf.public.$dom 4 || fail "create tf.public.$dom"
q "CREATE TABLE $dom (id serial PRIMARY KEY, label smallint, pixels bytea);
   CREATE TABLE \"$bad\" (id serial PRIMARY KEY, label smallint, pixels bytea)"
rows 7 $dom
rows 3 "\"$bad\""
skipped0=$(q 'SELECT skipped FROM mnist_cdc_status')
log2=$(stat -c %s "$HARNESS_PG_LOG")
cdc_set cdc_tables "public.$dom, public.mnist_cdc_bad*"
wait_for "log_since $log2 | grep -q 'initial snapshot done'" 60 "the initial snapshot is done"
pid2=$(worker_pid)
cdc_wait_state streaming 30
sleep 5		# longer than the worker's restart delay (2 s)
check_eq "$(worker_pid)" "$pid2" "the worker did not restart after the snapshot"
check_eq "$(log_since "$log2" | grep -c 'exited with exit code')" 0 "no worker exit in the log"
check_eq "$(log_since "$log2" | grep -c 'created slot')" 1 "the slot was created once"
check_eq "$(topic_total tf.public.$dom)" 7 "the other table's 7 rows arrive exactly once"
check_eq "$(q "SELECT skipped - $skipped0 FROM mnist_cdc_status")" 3 "the refused table's 3 rows are counted as skipped"
want="WARNING:  mnist_ml: skipping the rows of public.$bad: \"tf.public.$bad\" is not a valid Kafka topic name"
check_eq "$(log_since "$log2" | grep -cF "$want")" 1 "one WARNING names the table and the topic"

# ---- last_error is cleared once the broker acknowledges again (it was an outage's message)
broker_kill || fail "broker_kill"
wait_for "[ \"\$(q 'SELECT broker_reachable, last_error IS NOT NULL FROM mnist_cdc_status')\" = 'f|t' ]" 30 \
	"an outage: broker unreachable, last_error set"
broker_restart || fail "broker_restart"
rows 1 $dom
cdc_wait_caught_up 120 "confirmed after the outage"
wait_for "[ \"\$(q 'SELECT broker_reachable, last_error IS NULL, last_error_at IS NULL FROM mnist_cdc_status')\" = 't|t|t' ]" 30 \
	"after the outage: last_error and last_error_at cleared"

# ---- mnist_cdc_snapshot counts what it skips in mnist_cdc_status.skipped
q "INSERT INTO $dom (label, pixels) VALUES (NULL, decode(repeat('00', 784), 'hex'))"
cdc_wait_caught_up 60 "a row without a label confirmed (skipped by the stream)"
skipped1=$(q 'SELECT skipped FROM mnist_cdc_status')
check_eq "$(q "SELECT mnist_cdc_snapshot('$dom')" 2>/dev/null)" 8 "mnist_cdc_snapshot sends the 8 good rows"
check_eq "$(q "SELECT skipped - $skipped1 FROM mnist_cdc_status")" 1 "and its skipped row is counted"

cdc_reset cdc_tables
cdc_reset kafka_properties
cdc_wait_state streaming 60
q "DROP TABLE $flow, $held, $auto, $dom, \"$bad\""

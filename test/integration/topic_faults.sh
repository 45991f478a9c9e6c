#!/bin/bash
# Broker down when a streaming call starts: a bounded ERROR naming the servers.  Cancel in the
# middle of a stream, or statement_timeout in mnist_train_topic: the backend lives on with no
# librdkafka thread left, nothing committed or stored.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

T=topic_faults
D=$MNIST_DATA/digits
topic_model topic_faults || fail "train the model"
broker_create_topic $T 16
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 0 200 > "$TEST_TMP/$T.txt"
topic_produce $T "$TEST_TMP/$T.txt"

broker_kill || fail "broker_kill"
start=$(date +%s)
out=$(psql_out "SET mnist_ml.kafka_timeout_ms = 3000" \
	"SELECT * FROM mnist_evaluate_topic('$T', 'topic_faults', 'topic_faults_g0')")
took=$(($(date +%s) - start))
broker_restart || fail "broker_restart"
[[ "$out" == *"could not reach Kafka broker at \"$KAFKA_BOOTSTRAP\""* ]] &&
	pass "broker down: ERROR names the servers" || fail "broker down: $out"
[ $took -le 8 ] && pass "broker down: failed after ${took}s (kafka_timeout_ms 3 s)" ||
	fail "broker down: took ${took}s"

# cancel while the call waits for more messages (long stream timeout)
psql -X -qAt -c "SET application_name = 'topic_faults_cancel'" \
	-c "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_faults', 'topic_faults_g1', 60000)" \
	-c "SELECT 'alive ' || count(*) FROM pg_class WHERE relname = 'pg_class'" \
	-c "SELECT pg_sleep(5)" \
	> "$TEST_TMP/$T.cancel" 2>&1 &
bg=$!
for i in $(seq 100); do
	pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'topic_faults_cancel'
		AND query LIKE '%mnist_evaluate_topic%'")
	[ -n "$pid" ] && break
	sleep 0.2
done
sleep 6			# past the group assignment: consuming, then waiting
threads=$(ls /proc/$pid/task | wc -l)
[ "$threads" -gt 1 ] && pass "librdkafka threads while streaming ($threads)" || fail "threads: $threads"
q "SELECT pg_cancel_backend($pid)" >/dev/null
sleep 2			# the session now sleeps in pg_sleep(5)
check_eq "$(ls /proc/$pid/task | wc -l)" 1 "no librdkafka thread left after cancel"
wait $bg
out=$(cat "$TEST_TMP/$T.cancel")
[[ "$out" == *'canceling statement due to user request'* ]] && pass "cancel: statement canceled" ||
	fail "cancel: $out"
[[ "$out" == *'alive 1'* ]] && pass "cancel: the session goes on" || fail "session after cancel: $out"
check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_faults', 'topic_faults_g1', 2000)")" 200 \
	"cancel committed nothing: the group reads all 200 messages again"

# statement_timeout stops mnist_train_topic (reading or training) and frees the consumer; the
# same session then trains normally
out=$(psql -X -qAt -c "SET mnist_ml.progress = off" -c "SET statement_timeout = '120ms'" \
	-c "SELECT mnist_train_topic('$T', 'topic_faults_t', epochs => 200)" \
	-c "SELECT 'threads ' || count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/task') t" \
	-c "RESET statement_timeout" \
	-c "SELECT 'trained ' || (mnist_train_topic('$T', 'topic_faults_t', epochs => 1) > 0)" 2>&1)
[[ "$out" == *'canceling statement due to statement timeout'* ]] && pass "statement_timeout stops mnist_train_topic" ||
	fail "statement_timeout: $out"
[[ "$out" == *'threads 1'* ]] && pass "no librdkafka thread left after the timeout" || fail "threads after timeout: $out"
[[ "$out" == *'trained t'* ]] && pass "the session trains from the topic afterwards" || fail "train after timeout: $out"
check_eq "$(q "SELECT count(*) FROM mnist_models WHERE name = 'topic_faults_t'")" 1 "the cancelled call stored no model"

#!/bin/bash
# harness_selftest: proves the harness itself works against the real things: the Apache Kafka
# broker over TCP (kcat and Kafka's own Java clients), its faults (killed and restarted on its
# data, frozen and thawed), an immediate stop and restart of the cluster, the extension and the
# settings the harness promises.
source "$(dirname "$0")/../lib.sh"

topic=harness_selftest.keyed
kafka() {
	timeout 60 kcat -b "$KAFKA_BOOTSTRAP" -X allow.auto.create.topics=false "$@"
}

# ---- the broker over TCP
check_eq "$(kafka -L | grep -c 'broker 1 at 127.0.0.1')" 1 "kcat sees one broker at $KAFKA_BOOTSTRAP"
grep -q "Kafka version: $KAFKA_VERSION" "$KAFKA_DIR/logs/server.log" &&
	pass "the broker is Apache Kafka $KAFKA_VERSION" || fail "no 'Kafka version: $KAFKA_VERSION' in the broker's log"
broker_create_topic "$topic" 16 && pass "created topic $topic with 16 partitions" ||
	fail "broker_create_topic $topic 16"
broker_create_topic "$topic" 16 2>/dev/null && fail "creating an existing topic must fail" ||
	pass "creating an existing topic fails"
check_eq "$(kafka -L -t "$topic" | grep -o 'with [0-9]* partitions')" "with 16 partitions" \
	"kcat sees 16 partitions"
broker_create_topic harness_selftest.zero 0 2>/dev/null && fail "the broker creates a topic with 0 partitions" ||
	pass "a topic with 0 partitions is refused"

for k in 0 1 2 3 4 5 6 7 8 9; do
	echo "$k:value-$k"
done >"$TEST_TMP/selftest.msgs"
kafka -P -t "$topic" -K: <"$TEST_TMP/selftest.msgs" || fail "kcat could not produce"
kafka_dump "$topic" "$TEST_TMP/selftest.dump" || fail "kafka_dump failed"
check_eq "$(wc -l <"$TEST_TMP/selftest.dump")" 10 "kafka_dump (Java console consumer) sees the 10 messages"
check_eq "$(awk -F'\t' '$4 != "value-" $3 || $5 != "" {bad++} END {print bad + 0}' "$TEST_TMP/selftest.dump")" 0 \
	"each kafka_dump line is partition, offset, key, value, headers"
check_eq "$(cut -f1 "$TEST_TMP/selftest.dump" | sort -u | wc -l)" 10 \
	"keys 0..9 land on 10 distinct partitions of 16 (librdkafka's default partitioner)"
kcat_dump "$topic" "$TEST_TMP/selftest.kcat" || fail "kcat_dump failed"
check_eq "$(sort "$TEST_TMP/selftest.kcat" | md5sum)" "$(cut -f1-4 "$TEST_TMP/selftest.dump" | sort | md5sum)" \
	"kcat reads what the Java consumer reads"
echo "h:with-headers" | kafka -P -t "$topic" -K: -H table=public.x -H op=c || fail "kcat could not produce with headers"
kafka_dump "$topic" "$TEST_TMP/selftest.dump"
check_eq "$(awk -F'\t' '$3 == "h" {print $5}' "$TEST_TMP/selftest.dump")" "table=public.x,op=c" \
	"kafka_dump shows headers as k=v,k=v"
check_eq "$(broker_watermarks "$topic" | tr ' ' '\n' | awk -F: '{n += $3} END {print n}')" 11 \
	"broker_watermarks counts 11 messages"
check_topic_intact "$topic"

# Kafka's Java console producer, keyed
broker_create_topic harness_selftest.java 4 >/dev/null
printf '1:one\n2:two\n3:three\n' >"$TEST_TMP/selftest.java"
kafka_produce harness_selftest.java "$TEST_TMP/selftest.java" || fail "the Java console producer could not produce"
kafka_dump harness_selftest.java "$TEST_TMP/selftest.java.dump"
check_eq "$(cut -f3,4 "$TEST_TMP/selftest.java.dump" | sort | tr '\t\n' ':,')" "1:one,2:two,3:three," \
	"the Java console producer's keyed messages are read back"

# topics are never created by a client
echo "x" | kcat -b "$KAFKA_BOOTSTRAP" -P -t harness_selftest.auto -X allow.auto.create.topics=true \
	-X message.timeout.ms=3000 2>/dev/null
broker_watermarks harness_selftest.auto >/dev/null 2>&1 && fail "the broker auto-created a topic" ||
	pass "the broker does not auto-create topics"

# check_topic_intact must be able to fail: delete the first records of a partition.
broker_create_topic harness_selftest.trimmed 1 >/dev/null
printf 'a\nb\nc\n' >"$TEST_TMP/selftest.abc"
kafka_produce_unkeyed harness_selftest.trimmed "$TEST_TMP/selftest.abc"
echo '{"partitions": [{"topic": "harness_selftest.trimmed", "partition": 0, "offset": 2}], "version": 1}' \
	>"$TEST_TMP/selftest.delete.json"
kafka_java org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
	--offset-json-file "$TEST_TMP/selftest.delete.json" >/dev/null || fail "DeleteRecordsCommand"
out=$( (check_topic_intact harness_selftest.trimmed) 2>&1)
case $out in
*"messages were deleted"*) pass "check_topic_intact detects deleted records" ;;
*) fail "check_topic_intact missed the deletion: $out" ;;
esac
kcat_dump harness_selftest.no_such_topic "$TEST_TMP/none" 2>/dev/null && fail "kcat_dump of a missing topic succeeds" ||
	pass "kcat_dump of a missing topic fails"
kafka_dump harness_selftest.no_such_topic "$TEST_TMP/none" 2>/dev/null && fail "kafka_dump of a missing topic succeeds" ||
	pass "kafka_dump of a missing topic fails"
(check_topic_intact harness_selftest.no_such_topic) >/dev/null 2>&1 && fail "check_topic_intact passes a missing topic" ||
	pass "check_topic_intact fails on a missing topic"

# ---- the check helpers: a script fails exactly when one of its checks failed
helper() {	# helper "BODY": exit status of a script sourcing lib.sh and running BODY
	printf 'source %q\n%s\n' "$HARNESS_ROOT/test/lib.sh" "$1" >"$TEST_TMP/helper.sh"
	bash "$TEST_TMP/helper.sh" >/dev/null 2>&1
}
helper 'check_eq 1 1 same; pass fine; wait_for true 1 now' && pass "a script whose checks pass exits 0" ||
	fail "a script whose checks pass exits non-zero"
helper 'check_eq 1 2 differ; pass fine' && fail "a failed check_eq does not fail the script" ||
	pass "a failed check_eq fails the script"
helper 'fail boom; exit 0' && fail "fail then exit 0 does not fail the script" ||
	pass "fail then exit 0 still fails the script"
helper 'start=5 msg=x; wait_for "[ \$start = 5 ] && [ \$msg = x ]" 2 "sees the caller'"'"'s variables"' &&
	pass "wait_for conditions see the caller's variables" || fail "wait_for hides the caller's variables"
helper 'wait_for false 1 never' && fail "a timed out wait_for does not fail the script" ||
	pass "a timed out wait_for fails the script"
helper "at_exit 'touch \"\$TEST_TMP/at_exit_ran\"'; exit 3"
check_eq "$?:$([ -f "$TEST_TMP/at_exit_ran" ] && echo ran)" "3:ran" "at_exit runs and the exit status is kept"

# ---- the broker killed (SIGKILL) and restarted on its data; frozen (SIGSTOP) and thawed
broker_kill || fail "broker_kill"
broker_running && fail "the broker process survives broker_kill" || pass "the broker process is gone"
if timeout 30 kcat -b "$KAFKA_BOOTSTRAP" -L -m 3 >/dev/null 2>&1; then
	fail "a metadata request succeeds while the broker is dead"
else
	pass "a metadata request fails while the broker is dead"
fi
broker_restart || fail "broker_restart"
echo "late:produced-after-restart" | kafka -P -t "$topic" -K: || fail "kcat could not produce after the restart"
kafka_dump "$topic" "$TEST_TMP/selftest.dump"
check_eq "$(wc -l <"$TEST_TMP/selftest.dump"):$(grep -c 'produced-after-restart' "$TEST_TMP/selftest.dump")" "12:1" \
	"the 11 messages survived the crash, the one produced after the restart is there"
check_topic_intact "$topic"
broker_freeze || fail "broker_freeze"
if timeout 10 kcat -b "$KAFKA_BOOTSTRAP" -L -m 3 >/dev/null 2>&1; then
	fail "a metadata request succeeds while the broker is frozen"
else
	pass "a metadata request gets no answer while the broker is frozen"
fi
broker_thaw || fail "broker_thaw"
wait_for "timeout 10 kcat -b \"$KAFKA_BOOTSTRAP\" -L -m 5" 30 "metadata request works again after broker_thaw"

# ---- the cluster
check_eq "$(q "SELECT extname FROM pg_extension WHERE extname = 'mnist_ml'")" mnist_ml \
	"extension mnist_ml exists in $PGDATABASE"
check_eq "$(q "SHOW wal_level")" logical "wal_level is logical"
check_eq "$(q "SHOW shared_preload_libraries")" mnist_ml "mnist_ml is preloaded"
check_eq "$(q "SHOW mnist_ml.kafka_bootstrap_servers")" "$KAFKA_BOOTSTRAP" \
	"mnist_ml.kafka_bootstrap_servers is the harness's broker"
if [ "$(q "SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'")" = 1 ]; then
	q "SHOW output_plugin_libraries" | grep -qw mnist_ml && pass "output_plugin_libraries lists mnist_ml" ||
		fail "output_plugin_libraries lacks mnist_ml: $(q 'SHOW output_plugin_libraries')"
fi
for t in tf.public.mnist_train tf.public.mnist_test tf.public.mnist_manual; do
	check_eq "$(broker_watermarks "$t" | wc -w)" 16 "topic $t pre-created with 16 partitions"
done
check_eq "$(psql -X -qAt -h 127.0.0.1 -c 'SELECT 1')" 1 "the cluster answers over TCP on 127.0.0.1:$PGPORT"
check_eq "$(psql -X -qAt -d "dbname=postgres replication=database" -c 'IDENTIFY_SYSTEM' | cut -d'|' -f1)" \
	"$(q "SELECT system_identifier FROM pg_control_system()")" "replication connections are allowed"
for f in digits/mnist_train.sql digits/mnist_test.sql fashion/mnist_train.sql fashion/mnist_test.sql \
	digits/train-images-idx3-ubyte fashion/t10k-labels-idx1-ubyte; do
	[ -r "$MNIST_DATA/$f" ] || fail "MNIST_DATA has no $f"
done
pass "MNIST_DATA $MNIST_DATA is prepared"
as_postgres touch "$TEST_TMP/written_by_postgres" && pass "TEST_TMP is writable by postgres" ||
	fail "TEST_TMP is not writable by postgres"
check_eq "$(command -v psql)" "$("$PG_CONFIG" --bindir)/psql" "psql on PATH is the one of PG_CONFIG"

# ---- crash and restart: committed rows survive an immediate stop
q "SET client_min_messages = warning; DROP TABLE IF EXISTS harness_selftest; CREATE TABLE harness_selftest AS SELECT g FROM generate_series(1, 1000) g"
at_exit 'q "DROP TABLE IF EXISTS harness_selftest" >/dev/null 2>&1'
log_size=$(stat -c %s "$HARNESS_PG_LOG")
pg_stop_immediate || fail "pg_stop_immediate"
q "SELECT 1" >/dev/null 2>&1 && fail "the cluster still answers after pg_stop_immediate" ||
	pass "the cluster is down after pg_stop_immediate"
pg_start || fail "pg_start"
check_eq "$(q "SELECT count(*) FROM harness_selftest")" 1000 "the cluster answers again with committed rows"
tail -c +"$((log_size + 1))" "$HARNESS_PG_LOG" | grep -q "was not properly shut down" &&
	pass "the restart went through crash recovery" || fail "no crash recovery in the server log"
check_eq "$(q "SHOW mnist_ml.kafka_bootstrap_servers")" "$KAFKA_BOOTSTRAP" "settings survive the restart"

# ---- pg_reload
q "ALTER SYSTEM SET mnist_ml.kafka_timeout_ms = 12345" && pg_reload
wait_for '[ "$(q "SELECT setting FROM pg_settings WHERE name = '"'mnist_ml.kafka_timeout_ms'"'")" = 12345 ]' 10 "pg_reload applies a changed setting"
q "ALTER SYSTEM RESET mnist_ml.kafka_timeout_ms" && pg_reload

#!/bin/bash
# harness_selftest: proves the harness itself works against the real things: the mock broker
# over TCP with kcat, broker_down/broker_up, an immediate stop and restart of the cluster,
# the extension and the settings the harness promises.
source "$(dirname "$0")/../lib.sh"

topic=harness_selftest.keyed
kafka() {
	timeout 60 kcat -b "$KAFKA_BOOTSTRAP" -X allow.auto.create.topics=false "$@"
}

# ---- the broker over TCP
broker_create_topic "$topic" 16 && pass "created topic $topic with 16 partitions" ||
	fail "broker_create_topic $topic 16"
broker_create_topic "$topic" 16 2>/dev/null && fail "creating an existing topic must fail" ||
	pass "creating an existing topic fails"
check_eq "$(kafka -L -t "$topic" | grep -o 'with [0-9]* partitions')" "with 16 partitions" \
	"kcat sees 16 partitions"

for k in 0 1 2 3 4 5 6 7 8 9; do
	echo "$k:value-$k"
done | kafka -P -t "$topic" -K: || fail "kcat could not produce"
kcat_dump "$topic" "$TEST_TMP/selftest.dump" || fail "kcat_dump failed"
check_eq "$(wc -l <"$TEST_TMP/selftest.dump")" 10 "kcat_dump sees the 10 messages"
check_eq "$(awk -F'\t' '$4 != "value-" $3 {bad++} END {print bad + 0}' "$TEST_TMP/selftest.dump")" 0 \
	"each dumped line is partition, offset, key, value"
check_eq "$(cut -f1 "$TEST_TMP/selftest.dump" | sort -u | wc -l)" 10 \
	"keys 0..9 land on 10 distinct partitions of 16"
check_eq "$(broker_watermarks "$topic" | tr ' ' '\n' | awk -F: '{n += $3} END {print n}')" 10 \
	"broker_watermarks counts 10 messages"
check_topic_intact "$topic"

# check_topic_intact must be able to fail: overflow one partition past the mock's 5 MiB.
broker_create_topic harness_selftest.overflow 1 >/dev/null
awk 'BEGIN { s = sprintf("%2500s", ""); gsub(/ /, "x", s); for (i = 0; i < 2600; i++) print s }' |
	kafka -P -t harness_selftest.overflow -X batch.size=100000 || fail "kcat could not produce 6.5 MB"
out=$( (check_topic_intact harness_selftest.overflow) 2>&1)
case $out in
*"dropped messages"*) pass "check_topic_intact detects a partition the mock truncated" ;;
*) fail "check_topic_intact missed the truncation: $out" ;;
esac
kcat_dump harness_selftest.no_such_topic "$TEST_TMP/none" 2>/dev/null && fail "kcat_dump of a missing topic succeeds" ||
	pass "kcat_dump of a missing topic fails"
(check_topic_intact harness_selftest.no_such_topic) >/dev/null 2>&1 && fail "check_topic_intact passes a missing topic" ||
	pass "check_topic_intact fails on a missing topic"

_broker_cmd "bogus" 2>/dev/null && fail "the broker accepts an unknown command" ||
	pass "the broker rejects an unknown command"
broker_create_topic harness_selftest.zero 0 2>/dev/null && fail "the broker creates a topic with 0 partitions" ||
	pass "the broker rejects 0 partitions"

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

# ---- broker_down / broker_up
broker_down || fail "broker_down"
if timeout 30 kcat -b "$KAFKA_BOOTSTRAP" -L -m 3 >/dev/null 2>&1; then
	fail "a metadata request succeeds while the broker is down"
else
	pass "a metadata request fails while the broker is down"
fi
broker_up || fail "broker_up"
wait_for "timeout 10 kcat -b \"$KAFKA_BOOTSTRAP\" -L -m 5" 30 "metadata request works again after broker_up"
echo "late:produced-after-up" | kafka -P -t "$topic" -K: || fail "kcat could not produce after broker_up"
kcat_dump "$topic" "$TEST_TMP/selftest.dump"
check_eq "$(grep -c 'produced-after-up' "$TEST_TMP/selftest.dump")" 1 "a message produced after broker_up is in the topic"
check_topic_intact "$topic"

# ---- the cluster
check_eq "$(q "SELECT extname FROM pg_extension WHERE extname = 'mnist_ml'")" mnist_ml \
	"extension mnist_ml exists in $PGDATABASE"
check_eq "$(q "SHOW wal_level")" logical "wal_level is logical"
check_eq "$(q "SHOW shared_preload_libraries")" mnist_ml "mnist_ml is preloaded"
check_eq "$(q "SHOW mnist_ml.kafka_bootstrap_servers")" "$KAFKA_BOOTSTRAP" \
	"mnist_ml.kafka_bootstrap_servers is the mock broker"
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

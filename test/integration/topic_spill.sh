#!/bin/bash
# mnist_train_topic under mnist_ml.train_memory: a topic whose usable messages fit trains the
# same model, bit for bit, as without a bound (also when the watermarks count more messages than
# fit, read then partition by partition); a larger one is spilled to a temporary file, trained
# block-shuffled, deterministic and about as accurate; an error while reading (a bad message
# under strict_messages), cancel and statement_timeout during a spilled training leave no
# temporary file.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

T=topic_spill
D=$MNIST_DATA/digits
cleanup() {
	q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS topic_spill CASCADE;
		DELETE FROM mnist_models WHERE name LIKE 'topic\_spill%'" >/dev/null 2>&1
}
at_exit cleanup

# 8000 digits spread evenly over 16 partitions (mixed labels in each), and 4 bad messages (a
# wrong value count) in the middle of partitions 0, 5, 10 and 15: 8004 messages, 8000 usable
broker_create_topic $T 16
topic_messages $D/train-images-idx3-ubyte $D/train-labels-idx1-ubyte 0 8000 > "$TEST_TMP/$T.txt"
for p in $(seq 0 15); do
	awk -v p=$p 'NR % 16 == p { print; if (p % 5 == 0 && ++n == 100) print "5:1,2,3" }' "$TEST_TMP/$T.txt" |
		kcat -P -b "$KAFKA_BOOTSTRAP" -t $T -p $p -K: -X linger.ms=100 || fail "produce to partition $p"
done
check_eq "$(topic_total $T)" 8004 "8004 messages produced to $T"

q "CREATE SCHEMA topic_spill"
psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = topic_spill, public" \
	-f "$D/mnist_test.sql" >/dev/null || fail "load the test digits"
check_eq "$(q "SELECT count(*) FROM pg_ls_tmpdir()")" 0 "no temporary file before training"

# One session: no bound, 6133kB (8000 rows: the 8000 usable messages fit, the 8004 of the
# watermarks do not), 6132kB (7998 rows: spilled), the temporary files counted after each.
psql -X -qAt -v ON_ERROR_STOP=1 >"$TEST_TMP/caps.out" 2>"$TEST_TMP/caps.err" <<EOF
SET mnist_ml.progress = off;
SELECT mnist_train_topic('$T', 'topic_spill', epochs => 2, seed => 42) AS free_id \gset
SELECT FROM pg_stat_force_next_flush();
SELECT temp_files AS files FROM pg_stat_database WHERE datname = current_database() \gset
SET mnist_ml.train_memory = '6133kB';
SELECT mnist_train_topic('$T', 'topic_spill', epochs => 2, seed => 42) AS fit_id \gset
SELECT FROM pg_stat_force_next_flush();
SELECT 'fit_files ' || temp_files - :files FROM pg_stat_database WHERE datname = current_database();
SET mnist_ml.train_memory = '6132kB';
SELECT mnist_train_topic('$T', 'topic_spill', epochs => 2, seed => 42) AS spill_id \gset
SELECT FROM pg_stat_force_next_flush();
SELECT 'spill_files ' || temp_files - :files FROM pg_stat_database WHERE datname = current_database();
SELECT 'fit_same ' || (f.weights = b.weights), 'spill_other ' || (s.weights <> b.weights),
       'spill_rows ' || (s.metrics->>'rows')
  FROM mnist_models b, mnist_models f, mnist_models s
 WHERE b.id = :free_id AND f.id = :fit_id AND s.id = :spill_id;
EOF
[ $? = 0 ] || fail "the trainings under caps: $(cat "$TEST_TMP/caps.out" "$TEST_TMP/caps.err")"
out=$(cat "$TEST_TMP/caps.out")
check_eq "$(grep -c 'skipped 4 bad messages in topic "topic_spill"' "$TEST_TMP/caps.err")" 3 \
	"each training skipped the 4 bad messages"
[[ "$out" == *'fit_files 0'* ]] && pass "6133kB: no temporary file" || fail "6133kB: $out"
[[ "$out" == *'fit_same true'* ]] &&
	pass "6133kB, read partition by partition: the same weights as without a bound" || fail "6133kB: $out"
[[ "$out" == *'spill_files 1'* ]] && pass "6132kB: one temporary file" || fail "6132kB: $out"
[[ "$out" == *'spill_other true'* ]] && pass "6132kB: block-shuffled, other weights" || fail "6132kB: $out"
[[ "$out" == *'spill_rows 8000'* ]] && pass "6132kB: trained on the 8000 usable messages" || fail "6132kB: $out"

# 64kB: 83 rows in memory, blocks of 5; the same seed gives the same model, about as accurate
tiny="SET mnist_ml.progress = off; SET mnist_ml.train_memory = '64kB'; SET client_min_messages = error;
	SELECT mnist_train_topic('$T', 'topic_spill_tiny', epochs => 2, seed => 42)"
id1=$(q "$tiny")
id2=$(q "$tiny")
check_eq "$(q "SELECT count(DISTINCT md5(weights)) FROM mnist_models WHERE id IN ($id1, $id2)")" 1 \
	"64kB: same seed, same topic => identical weights"
acc() { q "SELECT round(accuracy::numeric, 4) FROM mnist_evaluate('topic_spill.mnist_test', $1::bigint)"; }
free=$(acc "(SELECT min(id) FROM mnist_models WHERE name = 'topic_spill')")
small=$(acc "$id1")
awk -v s="$small" -v f="$free" 'BEGIN { exit !(s >= 0.88 && s >= f - 0.02) }' &&
	pass "64kB: test accuracy $small (no bound: $free)" || fail "64kB: test accuracy $small (no bound: $free)"

# an error while the topic is read, once spilled (partition 0's bad message comes after 100
# rows, 83 fit): the file goes with it
out=$(psql -X -qAt 2>&1 <<EOF
SET mnist_ml.progress = off;
SET mnist_ml.train_memory = '64kB';
SET mnist_ml.strict_messages = on;
SELECT temp_files AS files FROM pg_stat_database WHERE datname = current_database() \gset
SELECT mnist_train_topic('$T', 'topic_spill_stopped');
SELECT FROM pg_stat_force_next_flush();
SELECT 'made ' || temp_files - :files FROM pg_stat_database WHERE datname = current_database();
SELECT 'left ' || count(*) FROM pg_ls_tmpdir();
EOF
)
[[ "$out" == *"bad message in topic \"$T\" at partition 0 offset 100"* ]] &&
	pass "strict_messages: an error while reading" || fail "strict_messages: $out"
[[ "$out" == *'made 1'* ]] && pass "strict_messages: the rows were spilled to a temporary file before the error" ||
	fail "strict_messages, the file made: $out"
[[ "$out" == *'left 0'* ]] && pass "strict_messages: the temporary file is gone" || fail "after the error: $out"

# spilled_training NAME STATEMENT_TIMEOUT: a 1000-epoch training under 64kB in the background,
# once its 8000 rows are in a temporary file
spilled_training() {
	psql -X -qAt -c "SET application_name = $1" -c "SET mnist_ml.progress = off" \
		-c "SET client_min_messages = error" -c "SET mnist_ml.train_memory = '64kB'" \
		-c "SET statement_timeout = '$2'" \
		-c "SELECT mnist_train_topic('$T', 'topic_spill_stopped', epochs => 1000)" >"$TEST_TMP/$1.out" 2>&1 &
	bg=$!
	wait_for '[ "$(q "SELECT count(*) FROM pg_ls_tmpdir() WHERE size >= 8000 * 785")" = 1 ]' 60 \
		"$1: the 8000 rows are in a temporary file while training"
}

spilled_training topic_spill_cancel 0
cancel_and_wait "$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'topic_spill_cancel'")" $bg \
	"the spilled training"
wait $bg
grep -q "canceling statement due to user request" "$TEST_TMP/topic_spill_cancel.out" &&
	pass "the spilled training was canceled" || fail "cancel: $(cat "$TEST_TMP/topic_spill_cancel.out")"
check_eq "$(q "SELECT count(*) FROM pg_ls_tmpdir()")" 0 "cancel: the temporary file is gone"

spilled_training topic_spill_timeout 10s
wait_for '! kill -0 $bg' 60 "statement_timeout ends the spilled training"
wait $bg
grep -q "canceling statement due to statement timeout" "$TEST_TMP/topic_spill_timeout.out" &&
	pass "the spilled training timed out" || fail "timeout: $(cat "$TEST_TMP/topic_spill_timeout.out")"
check_eq "$(q "SELECT count(*) FROM pg_ls_tmpdir()")" 0 "statement_timeout: the temporary file is gone"
check_eq "$(q "SELECT count(*) FROM mnist_models WHERE name = 'topic_spill_stopped'")" 0 "no model stored"

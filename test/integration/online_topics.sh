#!/bin/bash
# Online learning when the topic changes under a job (issue 20): partitions added while the job
# runs and while its worker restarts are read from their beginning; messages deleted before the
# job read them (DeleteRecords, as retention does) are counted and reported, the job going on
# from the log start; a topic deleted and created again, while the job runs or while it is
# stopped, is read again from its beginning, with a warning; an every of 30 days (more than an
# int of milliseconds) holds.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

S=online_tc
D=$MNIST_DATA/digits
at_exit "online_cleanup 'online\\_tc%' $S"
online_cleanup 'online\_tc%' $S
online_data $S
for i in 0 1 2 3 4 5; do
	topic_messages $D/train-images-idx3-ubyte $D/train-labels-idx1-ubyte $((i * 1000)) 1000 >"$TEST_TMP/batch$i.txt"
done
head -300 "$TEST_TMP/batch5.txt" >"$TEST_TMP/three.txt"
head -100 "$TEST_TMP/batch5.txt" >"$TEST_TMP/hundred.txt"

status() { q "SELECT $1 FROM mnist_online_status WHERE model_name = '$2'"; }
rows() { q "SELECT coalesce(sum(rows), 0) FROM mnist_online_rounds WHERE model_name = '$1'"; }
worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mnist_ml online'"; }
# job NAME TOPIC EVERY START_FROM MIN_ROWS: trains NAME's base model and starts its job on TOPIC.
# A section that counts every message trained uses MIN_ROWS 1: a round takes what the consumer
# has fetched by then, and a rest below min_rows would wait for more messages forever (a loaded
# machine splits 1000 messages into 928 and 72, say).
job() {
	q "SET mnist_ml.progress = off; SELECT mnist_train('$S.base', '$1', epochs => 1, seed => 1)" >/dev/null
	q "SELECT mnist_online_start('$1', '$2', '$S.val', every => '$3', min_rows => $5, max_rows => 100000, start_from => '$4')" >/dev/null ||
		fail "start $1"
	wait_for "[ \"\$(status 'offsets IS NOT NULL' $1)\" = t ]" 30 "the job $1 stored its start offsets"
}
# ---- partitions added to the topic: read from their beginning, while running and after a restart
broker_create_topic online_tc_parts 2
job online_tc_parts online_tc_parts '1 second' latest 1
broker_add_partitions online_tc_parts 4 || fail "grow the topic to 4 partitions"
topic_produce online_tc_parts "$TEST_TMP/batch0.txt"
echo "  watermarks: $(broker_watermarks online_tc_parts)"
wait_for "[ \"\$(rows online_tc_parts)\" = 1000 ]" 40 "all 1000 messages trained, those of the 2 new partitions too"
check_eq "$(q "SELECT count(*) FROM mnist_online_rounds r, jsonb_each_text(r.to_offsets) t WHERE r.model_name = 'online_tc_parts'
	AND r.id = (SELECT max(id) FROM mnist_online_rounds WHERE model_name = 'online_tc_parts')")" 4 \
	"the last round's offsets cover 4 partitions"
pid=$(worker_pid)
q "SELECT pg_terminate_backend($pid)" >/dev/null
broker_add_partitions online_tc_parts 6 || fail "grow the topic to 6 partitions"
topic_produce online_tc_parts "$TEST_TMP/batch1.txt"
echo "  watermarks: $(broker_watermarks online_tc_parts)"
wait_for "[ \"\$(rows online_tc_parts)\" = 2000 ]" 60 "after a worker restart, 1000 more trained, those of 2 more new partitions too"
check_eq "$(q "SELECT (offsets->>'4') || ' ' || (offsets->>'5') FROM mnist_online_jobs WHERE model_name = 'online_tc_parts'")" \
	"$(broker_watermarks online_tc_parts | tr ' ' '\n' | awk -F: '$1 >= 4 { printf "%s%s", s, $3; s = " " }')" \
	"the new partitions' stored offsets are their ends (read from 0)"
q "SELECT mnist_online_stop('online_tc_parts')" >/dev/null

# ---- messages deleted before the job read them (DeleteRecords): counted, reported, the job
# goes on from the log start
broker_create_topic online_tc_ret 1
job online_tc_ret online_tc_ret '1 second' earliest 100
topic_produce online_tc_ret "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status rounds online_tc_ret)\" = 1 ]" 40 "round 1 on the first 100 messages"
q "SELECT mnist_online_stop('online_tc_ret')" >/dev/null
topic_produce online_tc_ret "$TEST_TMP/batch1.txt"
broker_delete_records online_tc_ret 0 150 || fail "delete the records before offset 150"
echo "  watermarks: $(broker_watermarks online_tc_ret)"
q "SELECT mnist_online_start('online_tc_ret', 'online_tc_ret', '$S.val', every => '1 second', min_rows => 1, max_rows => 100000)" >/dev/null
# (the rounds after the restart take what the consumer has fetched by then: one or more)
wait_for "[ \"\$(q \"SELECT offsets->>'0' FROM mnist_online_jobs WHERE model_name = 'online_tc_ret'\")\" = 1100 ]" 40 \
	"the rounds after the restart reached the end"
check_eq "$(q "SELECT sum(rows) || ' ' || sum(lost) || ' ' || min((from_offsets->>'0')::int) || '-' || max((to_offsets->>'0')::int)
	FROM mnist_online_rounds WHERE model_name = 'online_tc_ret' AND id > (SELECT min(id) FROM mnist_online_rounds WHERE model_name = 'online_tc_ret')")" \
	"950 50 100-1100" "after the restart: 950 messages trained from the log start, 50 counted lost, offsets 100-1100"
check_eq "$(q "SELECT string_agg(warning, '; ') FROM mnist_online_rounds WHERE model_name = 'online_tc_ret'")" \
	"messages deleted by retention before they were read: 50 of partition 0 (offsets 100 to 149)" "a round says why"
check_eq "$(status "rows_lost || ' ' || (last_warning LIKE 'messages deleted by retention%') || ' ' || (last_warning_at IS NOT NULL)" online_tc_ret)" \
	"50 true true" "the status reports them"
grep -q 'WARNING:  online learning of model "online_tc_ret": messages deleted by retention before they were read: 50 of partition 0' "$HARNESS_PG_LOG" &&
	pass "a WARNING in the server log" || fail "no WARNING in the server log"
q "SELECT mnist_online_stop('online_tc_ret')" >/dev/null

# ---- the topic deleted and created again while the job runs: read from its beginning
broker_create_topic online_tc_re 2
job online_tc_re online_tc_re '1 second' earliest 1
topic_produce online_tc_re "$TEST_TMP/batch2.txt"
wait_for "[ \"\$(rows online_tc_re)\" = 1000 ]" 40 "1000 messages trained"
broker_delete_topic online_tc_re || fail "delete the topic"
broker_create_topic online_tc_re 2 || fail "create the topic again"
topic_produce online_tc_re "$TEST_TMP/three.txt"
wait_for "[ \"\$(rows online_tc_re)\" = 1300 ]" 40 "the 300 messages of the new topic trained"
check_eq "$(q "SELECT bool_and((SELECT bool_and(t.value::bigint >= f.value::bigint) FROM jsonb_each_text(r.to_offsets) t
	JOIN jsonb_each_text(r.from_offsets) f USING (key))) FROM mnist_online_rounds r WHERE model_name = 'online_tc_re'")" t \
	"no round goes from an offset after its end"
check_eq "$(status "last_warning LIKE 'topic \"online_tc_re\" was deleted and created again (%): reading it from its beginning; % messages read from the old topic and not trained yet are dropped'" online_tc_re)" \
	t "the status says so: $(status last_warning online_tc_re)"
check_eq "$(q "SELECT count(*) FROM mnist_online_rounds WHERE model_name = 'online_tc_re' AND warning LIKE 'topic % was deleted and created again%'")" 1 \
	"so does the round after it"

# ... and while it is stopped (stored offsets past the new topic's end)
topic_produce online_tc_re "$TEST_TMP/batch3.txt"
wait_for "[ \"\$(rows online_tc_re)\" = 2300 ]" 40 "1000 more trained"
q "SELECT mnist_online_stop('online_tc_re')" >/dev/null
broker_delete_topic online_tc_re || fail "delete the topic"
broker_create_topic online_tc_re 2 || fail "create the topic again"
topic_produce online_tc_re "$TEST_TMP/three.txt"
echo "  stored $(q "SELECT offsets FROM mnist_online_jobs WHERE model_name = 'online_tc_re'"), watermarks now $(broker_watermarks online_tc_re)"
q "SELECT mnist_online_start('online_tc_re', 'online_tc_re', '$S.val', every => '1 second', min_rows => 1, max_rows => 100000)" >/dev/null
wait_for "[ \"\$(rows online_tc_re)\" = 2600 ]" 40 "after a restart on the new topic, its 300 messages trained"
check_eq "$(q "SELECT count(*) FROM mnist_online_rounds WHERE model_name = 'online_tc_re' AND warning LIKE 'topic % was deleted and created again%'")" 2 \
	"the round says so"
q "SELECT mnist_online_stop('online_tc_re')" >/dev/null

# ---- every => '30 days': one round, then none (a job of every second on the same topic is
# the clock: it ran two rounds on messages the 30-day job consumed too)
broker_create_topic online_tc_every 1
job online_tc_every30 online_tc_every '30 days' latest 100
job online_tc_every1 online_tc_every '1 second' latest 100
topic_produce online_tc_every "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status rounds online_tc_every30)\" = 1 ] && [ \"\$(status rounds online_tc_every1)\" = 1 ]" 40 "both jobs ran a round"
topic_produce online_tc_every "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status rounds online_tc_every1)\" = 2 ]" 40 "the 1-second job ran round 2"
topic_produce online_tc_every "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status rounds online_tc_every1)\" = 3 ]" 40 "the 1-second job ran round 3"
check_eq "$(status rounds online_tc_every30)" 1 "the 30-day job ran no second round"
q "SELECT mnist_online_stop('online_tc_every30'), mnist_online_stop('online_tc_every1')" >/dev/null

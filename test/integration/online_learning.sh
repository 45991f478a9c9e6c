#!/bin/bash
# Online learning: a job started on a topic runs rounds on new messages, each consumed once
# (a round starts where the previous one ended); the worker killed while a round waits repeats
# that round once, deploying nothing twice; a broker outage pauses the job and it resumes by
# itself; a server crash and restart; stop; bad messages; a job whose role lost a privilege or
# was dropped fails cleanly; bad arguments.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

S=online_it
T=online_it
D=$MNIST_DATA/digits
cleanup() {
	online_cleanup 'online\_it%' $S
	q "DROP ROLE IF EXISTS regress_online_gone" >/dev/null 2>&1
}
at_exit cleanup
cleanup
online_data $S
q "SET mnist_ml.progress = off; SELECT mnist_train('$S.base', 'online_it', epochs => 2, seed => 1)" >/dev/null
base=$(q "SELECT max(id) FROM mnist_models WHERE name = 'online_it'")
broker_create_topic $T 4
for i in 0 1 2 3 4; do
	topic_messages $D/train-images-idx3-ubyte $D/train-labels-idx1-ubyte $((i * 1000)) 1000 >"$TEST_TMP/batch$i.txt"
done

status() { q "SELECT $1 FROM mnist_online_status WHERE model_name = '${2:-online_it}'"; }
worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mnist_ml online'"; }

# bad arguments, before anything is registered
start_sql="SELECT mnist_online_start('online_it', '$T', '$S.val', every => '1 second', min_rows => 1000, max_rows => 1000, epochs => 2"
for bad in "topic => '$T', start_from => 'middle'" "topic => '$T', min_rows => 5000, max_rows => 1000" \
	"topic => '$T', every => '10 ms'" "topic => '$T', batch_size => 0" "topic => 'no/such'" \
	"topic => '$T', group_id => ''"; do
	out=$(psql -X -qAt -c "SELECT mnist_online_start(model_name => 'online_it', validation => '$S.val', $bad)" 2>&1)
	[[ $out == *ERROR:* ]] && pass "rejected: $bad: ${out#ERROR:  }" || fail "$bad accepted: $out"
done
q "CREATE TABLE $S.empty (pixels bytea, label int)"
out=$(psql -X -qAt -c "SELECT mnist_online_start('online_it', '$T', '$S.empty')" 2>&1)
check_eq "$out" "ERROR:  validation table $S.empty has no rows
DETAIL:  Every round compares its candidate with the deployed model on the validation rows the role that starts the job may read." \
	"an empty validation table: rejected"
out=$(psql -X -qAt -c "SELECT mnist_online_start('online_it_none', '$T', '$S.val')" 2>&1)
[[ $out == *'model "online_it_none" does not exist'* ]] && pass "an unknown model: ${out#ERROR:  }" || fail "unknown model: $out"
check_eq "$(q "SELECT has_function_privilege('public', 'mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text)', 'EXECUTE')")" f \
	"mnist_online_start is not granted to PUBLIC"
check_eq "$(q "SELECT count(*) FROM mnist_online_jobs WHERE model_name LIKE 'online\_it%'")" 0 "nothing registered"

# start: the job stores where it starts (the end of the topic) before any round
q "$start_sql)" >/dev/null || fail "mnist_online_start"
check_eq "$(status state)" running "the job runs"
wait_for "[ \"\$(status 'offsets IS NOT NULL')\" = t ]" 30 "the worker stored the job's start offsets"
check_eq "$(status "(SELECT sum(value::bigint) FROM jsonb_each_text(offsets))")" 0 "at the end of the (empty) topic"
out=$(psql -X -qAt -c "$start_sql)" 2>&1)
[[ $out == *'online learning of model "online_it" is already running'* ]] && pass "started twice: error" || fail "started twice: $out"

# rounds: 1000 new messages each, consumed once, each round starting where the previous ended
topic_produce $T "$TEST_TMP/batch0.txt"
wait_for "[ \"\$(status rounds)\" = 1 ]" 60 "round 1 ran on the first 1000 messages"
topic_produce $T "$TEST_TMP/batch1.txt"
wait_for "[ \"\$(status rounds)\" = 2 ]" 60 "round 2 ran on the next 1000"
check_eq "$(q "SELECT string_agg(rows || ' ' || (SELECT sum(value::bigint) FROM jsonb_each_text(from_offsets)) || '-' ||
	(SELECT sum(value::bigint) FROM jsonb_each_text(to_offsets)), ', ' ORDER BY id) FROM mnist_online_rounds WHERE model_name = 'online_it'")" \
	"1000 0-1000, 1000 1000-2000" "rounds: 1000 rows each, offsets 0-1000 then 1000-2000"
check_eq "$(q "SELECT bool_and(r2.from_offsets = r1.to_offsets) FROM mnist_online_rounds r1 JOIN mnist_online_rounds r2
	ON r2.model_name = r1.model_name AND r2.id = (SELECT min(id) FROM mnist_online_rounds WHERE model_name = r1.model_name AND id > r1.id)
	WHERE r1.model_name = 'online_it'")" t "each round starts at the offsets the previous one stored"
check_eq "$(q "SELECT (metrics->>'init_model_id')::bigint FROM mnist_models WHERE id = (SELECT model_id FROM mnist_online_rounds WHERE model_name = 'online_it' ORDER BY id LIMIT 1)")" \
	"$base" "round 1 continued the deployed model"
check_eq "$(q "SELECT (m.metrics->>'init_model_id')::bigint = r1.model_id FROM mnist_online_rounds r1, mnist_online_rounds r2, mnist_models m
	WHERE r1.model_name = 'online_it' AND r2.model_name = 'online_it' AND r2.id > r1.id AND m.id = r2.model_id")" t \
	"round 2 continued round 1's candidate"
check_eq "$(q "SELECT bool_and(deployed = (accuracy_after >= accuracy_before)) AND bool_and(deployed = EXISTS
	(SELECT FROM mnist_deployments d WHERE d.model_id = r.model_id AND d.reason LIKE 'gate:%')) FROM mnist_online_rounds r WHERE model_name = 'online_it'")" t \
	"each round deployed through the gate exactly when its accuracy was not worse"
echo "  rounds: $(q "SELECT string_agg(round(accuracy_before::numeric, 3) || ' -> ' || round(accuracy_after::numeric, 3) || ' ' || deployed, ', ' ORDER BY id) FROM mnist_online_rounds WHERE model_name = 'online_it'")"
check_eq "$(status "rows_consumed || ' ' || (deployed_accuracy IS NOT NULL)")" "2000 true" "status: rows consumed and the deployed accuracy"

# a manual deploy between rounds supersedes the job's line: round 3 is stored, not deployed
check_eq "$(q "SELECT mnist_deploy('online_it', $base)")" "$base" "the base model deployed by hand"

# the worker killed while round 3 waits (for the validation table, locked until the test
# cancels the locking session: a loaded machine may take long to bring round 3 there): the
# restarted worker repeats round 3 from the stored offsets, once
PGAPPNAME=online_it_locker psql -X -qAt -c "BEGIN" -c "LOCK TABLE $S.val" -c "SELECT pg_sleep(300)" -c "COMMIT" >/dev/null 2>&1 &
locker=$!
wait_for "[ \"\$(q \"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	WHERE a.application_name = 'online_it_locker' AND l.relation = '$S.val'::regclass AND l.granted\")\" = 1 ]" 30 \
	"the validation table is locked"
topic_produce $T "$TEST_TMP/batch2.txt"
worker_waits() { [ "$(q "SELECT wait_event_type FROM pg_stat_activity WHERE backend_type = 'mnist_ml online'")" = Lock ]; }
wait_for worker_waits 60 \
	"round 3 waits for the validation table"
models_before=$(q "SELECT count(*) FROM mnist_models WHERE name = 'online_it'")
old_pid=$(worker_pid)
q "SELECT pg_terminate_backend($old_pid)" >/dev/null
wait_for "[ -n \"\$(worker_pid)\" ] && [ \"\$(worker_pid)\" != $old_pid ]" 30 "the worker was restarted"
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'online_it_locker'" >/dev/null
wait "$locker"
wait_for "[ \"\$(status rounds)\" = 3 ]" 60 "round 3 ran after the restart"
sleep 2
check_eq "$(status rounds)" 3 "round 3 ran once"
check_eq "$(q "SELECT rows || ' ' || (SELECT sum(value::bigint) FROM jsonb_each_text(from_offsets)) || '-' || (SELECT sum(value::bigint) FROM jsonb_each_text(to_offsets))
	FROM mnist_online_rounds WHERE model_name = 'online_it' ORDER BY id DESC LIMIT 1")" "1000 2000-3000" "round 3: the 1000 messages after round 2"
check_eq "$(q "SELECT count(*) FROM mnist_models WHERE name = 'online_it'")" $((models_before + 1)) "one model stored for round 3"
check_eq "$(q "SELECT deployed || ' ' || reason FROM mnist_online_rounds WHERE model_name = 'online_it' ORDER BY id DESC LIMIT 1")" \
	"false superseded: model $base was deployed since the job's last round" "round 3 was superseded by the manual deploy"
check_eq "$(q "SELECT (SELECT loss FROM mnist_evaluate('$S.val', 'online_it')) = (SELECT loss FROM mnist_evaluate('$S.val', $base::bigint))")" t \
	"the hand-deployed model still serves"
check_eq "$(q "SELECT count(*) = count(DISTINCT model_id) FROM mnist_deployments WHERE name = 'online_it' AND reason LIKE 'gate:%'")" t "no round's model deployed twice"

# a broker outage pauses the job; it resumes by itself and runs the next round
broker_kill || fail "broker_kill"
wait_for "[ \"\$(status state)\" = paused ]" 60 "the job is paused while the broker is down"
echo "  status: $(status last_error)"
broker_restart || fail "broker_restart"
topic_produce $T "$TEST_TMP/batch3.txt"
wait_for "[ \"\$(status rounds)\" = 4 ]" 90 "round 4 ran after the broker came back"
check_eq "$(status "state || ' ' || coalesce(last_error, 'none')")" "running none" "the job runs again"
check_eq "$(q "SELECT (metrics->>'init_model_id')::bigint FROM mnist_models WHERE id = (SELECT model_id FROM mnist_online_rounds WHERE model_name = 'online_it' ORDER BY id DESC LIMIT 1)")" \
	"$base" "round 4 started again from the deployed model"

# a server restart (crash): the job runs again and resumes from its stored offsets
pg_stop_immediate && pg_start || fail "restart the server"
topic_produce $T "$TEST_TMP/batch4.txt"
wait_for "[ \"\$(status rounds)\" = 5 ]" 90 "round 5 ran after the server restart"
check_eq "$(q "SELECT rows || ' ' || (SELECT sum(value::bigint) FROM jsonb_each_text(from_offsets)) || '-' || (SELECT sum(value::bigint) FROM jsonb_each_text(to_offsets))
	FROM mnist_online_rounds WHERE model_name = 'online_it' ORDER BY id DESC LIMIT 1")" "1000 4000-5000" "round 5: the 1000 messages after round 4"

# stop: no more rounds
check_eq "$(q "SELECT mnist_online_stop('online_it')")" t "mnist_online_stop"
check_eq "$(status state)" stopped "stopped"
topic_produce $T "$TEST_TMP/batch0.txt"
sleep 4
check_eq "$(status rounds)" 5 "no round after the stop"
check_eq "$(q "SELECT mnist_online_stop('online_it')")" f "stopping again: false"

# bad messages are skipped and counted; a batch of bad messages only moves the offsets on
broker_create_topic online_it_bad 1
printf 'x:1,2,3\n3:1,2\n' >"$TEST_TMP/bad.txt"
head -3 "$TEST_TMP/batch0.txt" >>"$TEST_TMP/bad.txt"
topic_produce online_it_bad "$TEST_TMP/bad.txt"
q "SET mnist_ml.progress = off; SELECT mnist_train('$S.base', 'online_it_bad', epochs => 1)" >/dev/null
q "SELECT mnist_online_start('online_it_bad', 'online_it_bad', '$S.val', every => '1 second', min_rows => 5, max_rows => 5, start_from => 'earliest')" >/dev/null
wait_for "[ \"\$(status rounds online_it_bad)\" = 1 ]" 60 "a round of 3 good and 2 bad messages"
check_eq "$(q "SELECT rows || ' ' || skipped FROM mnist_online_rounds WHERE model_name = 'online_it_bad'")" "3 2" "3 rows trained, 2 skipped"
printf 'x:1\ny:2\nz:3\n7:1,2\n7:\n' >"$TEST_TMP/bad2.txt"
topic_produce online_it_bad "$TEST_TMP/bad2.txt"
bad_offset() { q "SELECT offsets->>'0' FROM mnist_online_jobs WHERE model_name = 'online_it_bad'"; }
wait_for '[ "$(bad_offset)" = 10 ]' 30 "5 bad messages: the offsets move on"
check_eq "$(status "rounds || ' ' || state" online_it_bad)" "1 running" "no round for bad messages only, the job runs"
q "SELECT mnist_online_stop('online_it_bad')" >/dev/null

# 2,000 messages at once, rounds of 1,000: a round takes from every partition evenly (CDC keys
# by label, so a partition holds a few labels only)
broker_create_topic online_it_fair 4
q "SET mnist_ml.progress = off; SELECT mnist_train('$S.base', 'online_it_fair', epochs => 1)" >/dev/null
q "SELECT mnist_online_start('online_it_fair', 'online_it_fair', '$S.val', every => '1 second', min_rows => 1000, max_rows => 1000)" >/dev/null
wait_for "[ \"\$(status 'offsets IS NOT NULL' online_it_fair)\" = t ]" 30 "the fair job waits for messages"
cat "$TEST_TMP/batch0.txt" "$TEST_TMP/batch1.txt" >"$TEST_TMP/two.txt"
topic_produce online_it_fair "$TEST_TMP/two.txt"
wait_for "[ \"\$(status rounds online_it_fair)\" = 2 ]" 60 "two rounds of 1,000"
echo "  per partition, round 1: $(q "SELECT string_agg(t.key || ': ' || (t.value::bigint - f.value::bigint), ', ' ORDER BY t.key)
	FROM mnist_online_rounds r, jsonb_each_text(r.to_offsets) t, jsonb_each_text(r.from_offsets) f
	WHERE r.id = (SELECT min(id) FROM mnist_online_rounds WHERE model_name = 'online_it_fair') AND f.key = t.key")"
check_eq "$(q "SELECT min(t.value::bigint - f.value::bigint) >= 100 FROM mnist_online_rounds r, jsonb_each_text(r.to_offsets) t,
	jsonb_each_text(r.from_offsets) f WHERE r.id = (SELECT min(id) FROM mnist_online_rounds WHERE model_name = 'online_it_fair') AND f.key = t.key")" t \
	"round 1 took at least 100 messages from each of the 4 partitions"
q "SELECT mnist_online_stop('online_it_fair')" >/dev/null

# a job whose role lost a privilege, or was dropped, fails with the reason; the worker goes on
q "CREATE ROLE regress_online_gone; GRANT USAGE ON SCHEMA $S TO regress_online_gone;
   GRANT SELECT ON $S.val, $S.base TO regress_online_gone;
   GRANT EXECUTE ON FUNCTION mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text) TO regress_online_gone"
pid=$(worker_pid)
head -100 "$TEST_TMP/batch4.txt" >"$TEST_TMP/hundred.txt"
role_job() {	# role_job NAME: the role trains NAME and starts its job on topic NAME (from its end)
	broker_create_topic $1 1
	psql -X -qAt -v ON_ERROR_STOP=1 >/dev/null <<-SQL || fail "the role's job $1"
		SET ROLE regress_online_gone;
		SET mnist_ml.progress = off;
		SELECT mnist_train('$S.base', '$1', epochs => 1);
		SELECT mnist_online_start('$1', '$1', '$S.val', every => '1 second', min_rows => 100, max_rows => 100);
	SQL
	wait_for "[ \"\$(status 'offsets IS NOT NULL' $1)\" = t ]" 30 "the job $1 of the role waits for messages"
}
role_job online_it_priv
q "REVOKE SELECT ON $S.val FROM regress_online_gone"
topic_produce online_it_priv "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status state online_it_priv)\" = failed ]" 60 "the job of a role that lost SELECT on the validation table failed"
check_eq "$(status "last_error" online_it_priv)" "permission denied for table val" "status says why"

q "GRANT SELECT ON $S.val TO regress_online_gone"
role_job online_it_gone
q "REVOKE ALL ON $S.val, $S.base FROM regress_online_gone; REVOKE USAGE ON SCHEMA $S FROM regress_online_gone;
   REVOKE EXECUTE ON FUNCTION mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text) FROM regress_online_gone;
   DROP ROLE regress_online_gone"
topic_produce online_it_gone "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status state online_it_gone)\" = failed ]" 60 "the dropped role's job failed"
check_eq "$(status "last_error LIKE 'role with OID % that started the job no longer exists'" online_it_gone)" t \
	"status says why: $(status last_error online_it_gone)"
check_eq "$(status rounds online_it_gone)" 0 "it ran no round"
check_eq "$(worker_pid)" "$pid" "the worker did not crash"

#!/bin/bash
# Gated training: mnist_train_topic with validation and deploy => 'if_better' (the decision and
# both figures in a NOTICE), a topic of wrong labels kept out by the gate; two gated trainings of
# one name at once: the second decides after the first commits, against the first's model.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

S=train_gate_it
D=$MNIST_DATA/digits
cleanup() {
	q "DELETE FROM mnist_deployments WHERE name LIKE 'gate\_it%'; DELETE FROM mnist_models WHERE name LIKE 'gate\_it%'" >/dev/null 2>&1
	q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null 2>&1
}
at_exit cleanup
cleanup
q "CREATE SCHEMA $S"
psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = $S, public" -f "$D/mnist_test.sql" >/dev/null ||
	fail "load the test digits"
q "CREATE TABLE $S.val AS SELECT pixels, label FROM $S.mnist_test WHERE id <= 500"

# a topic of 2000 digits, and the same images with wrong labels (key = (label + 1 + i % 9) % 10)
broker_create_topic gate_it_good 4
broker_create_topic gate_it_wrong 4
topic_messages $D/train-images-idx3-ubyte $D/train-labels-idx1-ubyte 0 2000 >"$TEST_TMP/good.txt"
awk -F: -v OFS=: '{ $1 = ($1 + 1 + NR % 9) % 10; print }' "$TEST_TMP/good.txt" >"$TEST_TMP/wrong.txt"
topic_produce gate_it_good "$TEST_TMP/good.txt"
topic_produce gate_it_wrong "$TEST_TMP/wrong.txt"
check_eq "$(topic_count gate_it_wrong)" 2000 "2000 wrongly labelled digits produced"

gated() {	# gated TOPIC: mnist_train_topic into gate_it through the gate; prints the NOTICE
	psql -X -qAt -c "SET client_min_messages = notice" -c "SET mnist_ml.progress = off" \
		-c "SELECT mnist_train_topic('$1', 'gate_it', epochs => 2, seed => 1, validation => '$S.val', deploy => 'if_better') > 0" 2>&1
}
out=$(gated gate_it_good)
[[ $out =~ NOTICE:\ +model\ ([0-9]+)\ of\ \"gate_it\"\ deployed\ \(gate:\ validation\ accuracy\ (0\.[0-9]{4}),\ no\ model\ deployed\) ]] &&
	pass "first model deployed through the gate: ${BASH_REMATCH[0]#NOTICE:  }" || fail "first gated training: $out"
good=${BASH_REMATCH[1]}
good_acc=${BASH_REMATCH[2]}
out=$(gated gate_it_wrong)
[[ $out =~ NOTICE:\ +model\ ([0-9]+)\ of\ \"gate_it\"\ stored,\ not\ deployed\ \(gate:\ validation\ accuracy\ (0\.[0-9]{4})\ \<\ $good_acc\ of\ model\ $good\) ]] &&
	pass "wrong labels refused: ${BASH_REMATCH[0]#NOTICE:  }" || fail "gate on wrong labels: $out"
check_eq "$(q "SELECT (SELECT loss FROM mnist_evaluate('$S.val', 'gate_it')) = (SELECT loss FROM mnist_evaluate('$S.val', $good::bigint))")" t \
	"the good model is still served"
check_eq "$(q "SELECT metrics->'source'->>'topic' || ' ' || (metrics->'validation'->>'deployed_model_id') FROM mnist_models WHERE name = 'gate_it' ORDER BY id DESC LIMIT 1")" \
	"gate_it_wrong $good" "the refused model's metrics name its topic and the deployed model it was compared with"

# two gated trainings of one name at once.  A weak model is deployed; A trains a good model and
# keeps its transaction open; B trains a mediocre one meanwhile.  B's decision waits for A's
# commit and compares with A's model, so B is refused and A's model serves.
q "CREATE TABLE $S.src AS SELECT pixels, label FROM $S.mnist_test WHERE id > 500"
q "SET mnist_ml.progress = off; SELECT mnist_train('$S.src', 'gate_it_race', epochs => 1, seed => 1, batch_size => 512)" >/dev/null
gate_txn() {	# gate_txn EPOCHS [SQL before COMMIT]
	psql -X -qAt -v ON_ERROR_STOP=1 2>&1 <<-SQL
		SET mnist_ml.progress = off;
		SET application_name = gate_it_$1;
		BEGIN;
		SELECT mnist_train('$S.src', 'gate_it_race', epochs => $1, seed => 2, validation => '$S.val', deploy => 'if_better');
		${2:-}
		COMMIT;
	SQL
}
sleeping() {
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gate_it_5' AND query LIKE 'SELECT pg_sleep%'")" = 1 ]
}
gate_txn 5 "SELECT pg_sleep(4);" >"$TEST_TMP/a.out" &
a=$!
wait_for sleeping 60 "A stored and deployed its model, uncommitted"
start=$SECONDS
b=$(gate_txn 1)
waited=$((SECONDS - start))
wait $a
a_id=$(head -1 "$TEST_TMP/a.out")
[[ $a_id =~ ^[0-9]+$ ]] && pass "A committed model $a_id" || fail "A: $(cat "$TEST_TMP/a.out")"
[ "$waited" -ge 2 ] && pass "B's decision waited for A's transaction (${waited} s)" || fail "B did not wait (${waited} s)"
b_id=$(tail -1 <<<"$b")
check_eq "$(q "SELECT metrics->'validation'->>'deployed_model_id' FROM mnist_models WHERE id = $b_id")" "$a_id" \
	"B compared itself with A's model"
check_eq "$(q "SELECT metrics->'deploy'->>'deployed' FROM mnist_models WHERE id = $b_id")" false "B was refused"
check_eq "$(q "SELECT (SELECT loss FROM mnist_evaluate('$S.val', 'gate_it_race')) = (SELECT loss FROM mnist_evaluate('$S.val', $a_id::bigint))")" t \
	"A's model serves the name"
check_eq "$(q "SELECT count(*) FROM mnist_deployments WHERE name = 'gate_it_race'")" 2 "two deployments: the weak model and A's"

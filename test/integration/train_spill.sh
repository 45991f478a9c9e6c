#!/bin/bash
# A spilled training (mnist_ml.train_memory smaller than the source): its temporary file exists
# while it trains, pg_cancel_backend stops it within a bounded wait, and the file is gone after;
# with one and with two training threads.
source "$(dirname "$0")/../lib.sh"

S=train_spill_it
cleanup() {
	q "DELETE FROM mnist_models WHERE name = 'spill_it'" >/dev/null 2>&1
	q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null 2>&1
}
at_exit cleanup
cleanup
q "CREATE SCHEMA $S"
psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = $S, public" -f "$MNIST_DATA/digits/mnist_train.sql" >/dev/null ||
	fail "load the digits"
check_eq "$(q "SELECT count(*) FROM pg_ls_tmpdir()")" 0 "no temporary file before training"

for threads in 1 2; do
	psql -X -qAt -c "SET application_name = spill_it" -c "SET mnist_ml.progress = off" \
		-c "SET mnist_ml.train_memory = '256kB'" -c "SET mnist_ml.train_threads = $threads" \
		-c "SELECT mnist_train('$S.mnist_train', 'spill_it', epochs => 1000)" >"$TEST_TMP/train.out" 2>&1 &
	train=$!
	wait_for '[ "$(q "SELECT count(*) FROM pg_ls_tmpdir() WHERE size >= 8000 * 785")" = 1 ]' 30 \
		"$threads thread(s): the 8000 rows are in a temporary file while training"
	pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'spill_it'")
	cancel_and_wait "$pid" $train "$threads thread(s): the training"
	wait $train
	grep -q "canceling statement due to user request" "$TEST_TMP/train.out" &&
		pass "$threads thread(s): the training was canceled" || fail "the training's output: $(cat "$TEST_TMP/train.out")"
	check_eq "$(q "SELECT count(*) FROM pg_ls_tmpdir()")" 0 "$threads thread(s): the temporary file is gone"
done
check_eq "$(q "SELECT count(*) FROM mnist_models WHERE name = 'spill_it'")" 0 "no model stored"

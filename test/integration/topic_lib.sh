# Helpers of the topic_*.sh and pipeline.sh tests (sourced after ../lib.sh; not a test itself).

# progress NOTICEs stay out of test output (a test that checks one asks for it)
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

# topic_messages IMAGES LABELS FIRST COUNT: "label:p0,p1,...,p783" lines of IDX images
# FIRST..FIRST+COUNT-1, as kcat -K: produces them (key = label, value = CSV pixels).
topic_messages() {
	paste -d: \
		<(tail -c +$((9 + $3)) "$2" | head -c "$4" | od -An -v -tu1 -w1 | tr -d ' ') \
		<(tail -c +$((17 + $3 * 784)) "$1" | head -c $(($4 * 784)) |
			od -An -v -tu1 -w784 | sed -e 's/^ *//' -e 's/  */,/g')
}

# topic_produce TOPIC FILE: one message per line of FILE, key before the first ':'.
topic_produce() {
	kcat -P -b "$KAFKA_BOOTSTRAP" -t "$1" -K: < "$2"
}

# topic_count TOPIC: number of messages in TOPIC.
topic_count() {
	kcat_dump "$1" "$TEST_TMP/count.$$" && wc -l < "$TEST_TMP/count.$$"
}

# psql_out SQL...: runs each SQL in one session, stdout and stderr together, never stops.
psql_out() {
	local args=()
	for s in "$@"; do args+=(-c "$s"); done
	psql -X -qAt "${args[@]}" 2>&1
}

# topic_model NAME: trains model NAME (2 epochs) on the real train digits, loaded into a
# schema of its own so that change data capture (public.mnist_*) leaves them alone.
topic_model() {
	psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
		-c "DROP SCHEMA IF EXISTS $1 CASCADE; CREATE SCHEMA $1" \
		-c "SET search_path = $1, public" -f "$MNIST_DATA/digits/mnist_train.sql" \
		-c "SET mnist_ml.progress = off" \
		-c "SELECT mnist_train('$1.mnist_train', '$1', epochs => 2, seed => 1)" \
		-c "DROP SCHEMA $1 CASCADE" >/dev/null
}

# topic_after TOPIC: "(partition, high)" SQL rows of TOPIC's current high watermarks, so that a
# query can keep only the messages produced afterwards.
topic_after() {
	local w sep= out=
	for w in $(broker_watermarks "$1"); do
		IFS=: read -r p lo hi <<<"$w"
		out+="$sep($p, $hi)"
		sep=", "
	done
	echo "${out:-(-1, 0)}"
}

# online_data SCHEMA: SCHEMA with the test digits, SCHEMA.val (the first 500: a validation table)
# and SCHEMA.base (the next 500: to train a job's model on).
online_data() {
	q "CREATE SCHEMA $1" &&
		psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = $1, public" -f "$MNIST_DATA/digits/mnist_test.sql" >/dev/null &&
		q "CREATE TABLE $1.val AS SELECT pixels, label FROM $1.mnist_test WHERE id <= 500;
		   CREATE TABLE $1.base AS SELECT pixels, label FROM $1.mnist_test WHERE id > 500 AND id <= 1000" ||
		fail "the digits in schema $1"
}

# online_cleanup PATTERN SCHEMA: stops and deletes the online learning jobs, rounds, deployments
# and models whose name is LIKE PATTERN, and drops SCHEMA.
online_cleanup() {
	q "SELECT mnist_online_stop(model_name) FROM mnist_online_jobs WHERE model_name LIKE '$1'" >/dev/null 2>&1
	q "DELETE FROM mnist_online_rounds WHERE model_name LIKE '$1';
	   DELETE FROM mnist_online_jobs WHERE model_name LIKE '$1';
	   DELETE FROM mnist_deployments WHERE name LIKE '$1';
	   DELETE FROM mnist_models WHERE name LIKE '$1'" >/dev/null 2>&1
	q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $2 CASCADE" >/dev/null 2>&1
}

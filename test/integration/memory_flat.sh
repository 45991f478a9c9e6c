#!/bin/bash
# memory_flat: in one backend, 200 calls of each training, prediction, evaluation, topic and CDC
# SQL function leave its private memory flat: RssAnon (/proc/PID/status: the backend's own
# anonymous memory, not the shared buffers VmRSS also counts) grows by less than 2 MB between
# call 20 and call 200.  Small models, small tables, short stream timeouts.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

S=memory_flat
T=memory_flat_topic
D=$MNIST_DATA/digits
LIMIT_KB=2048
broker_create_topic $T 4
broker_create_topic tf.$S.snap 1
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 0 50 >"$TEST_TMP/$T.txt"
topic_produce $T "$TEST_TMP/$T.txt"
check_eq "$(topic_count $T)" 50 "50 digits produced to $T"

psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
	-c "DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S" \
	-c "SET search_path = $S, public" -f "$D/mnist_test.sql" \
	-c "CREATE TABLE src AS SELECT pixels, label FROM mnist_test ORDER BY id LIMIT 100" \
	-c "CREATE TABLE snap AS SELECT id, pixels, label FROM mnist_test ORDER BY id LIMIT 10" \
	-c "CREATE TABLE classified (pixels bytea, predicted smallint)" \
	-c "CREATE TRIGGER classify BEFORE INSERT ON classified FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'memory_flat')" \
	-c "SET mnist_ml.progress = off" \
	-c "SELECT mnist_train('src', 'memory_flat', epochs => 1, hidden_units => 8, seed => 1)" >/dev/null ||
	fail "set up schema $S"
id=$(q "SELECT max(id) FROM mnist_models WHERE name = 'memory_flat'")

# name|statement ({i}: the call's number)
calls=(
	"mnist_train|SELECT mnist_train('$S.src', 'memory_flat_t', epochs => 1, hidden_units => 4, seed => {i})"
	"mnist_predict|SELECT mnist_predict(pixels, 'memory_flat') FROM $S.src LIMIT 10"
	"mnist_predict_proba|SELECT mnist_predict_proba(pixels, 'memory_flat') FROM $S.src LIMIT 10"
	"mnist_classify|INSERT INTO $S.classified (pixels) SELECT pixels FROM $S.src LIMIT 10"
	"mnist_evaluate|SELECT * FROM mnist_evaluate('$S.src', 'memory_flat')"
	"mnist_evaluate(id)|SELECT * FROM mnist_evaluate('$S.src', $id)"
	"mnist_confusion_matrix|SELECT * FROM mnist_confusion_matrix('$S.src', 'memory_flat')"
	"mnist_model_cache|SELECT * FROM mnist_model_cache()"
	"mnist_train_topic|SELECT mnist_train_topic('$T', 'memory_flat_tt', epochs => 1, hidden_units => 4, seed => {i})"
	"mnist_evaluate_topic|SELECT * FROM mnist_evaluate_topic('$T', 'memory_flat', 'memory_flat_e{i}', 100)"
	"mnist_predict_topic|SELECT count(*) FROM mnist_predict_topic('$T', 'memory_flat', 'memory_flat_p{i}', 100)"
	"mnist_cdc_snapshot|SELECT mnist_cdc_snapshot('$S.snap')"
	"mnist_cdc_status|SELECT * FROM mnist_cdc_status"
)

# session NAME CALL...: one psql session (one backend) runs the calls, one statement each;
# after call 20 and after call 200 of each it writes "name calls RssAnon-kB time" to
# $TEST_TMP/NAME.rss.  The slow topic functions (a consumer group join per call) get sessions
# of their own, run at the same time, so that the test takes about a minute and a half.
session() {
	local name=$1 c stmt lo hi
	shift
	{
		echo '\set ON_ERROR_STOP 1'
		echo 'SET mnist_ml.progress = off;'
		echo 'SET client_min_messages = warning;'
		echo 'SELECT pg_backend_pid() AS pid \gset'
		echo '\setenv MF_PID :pid'
		echo "\\setenv MF_OUT $TEST_TMP/$name.rss"
		echo '\o /dev/null'
		for c in "$@"; do
			stmt=${c#*|}
			stmt=${stmt//\'/\'\'}
			stmt=${stmt//\{i\}/%s}
			for lo in 1 21; do
				hi=$((lo == 1 ? 20 : 200))
				echo "SELECT format('$stmt', i) FROM generate_series($lo, $hi) i \\gexec"
				echo "\\! echo '${c%%|*}' $hi \$(awk '/^RssAnon:/ {print \$2}' /proc/\$MF_PID/status) \$(date +%s.%N) >>\"\$MF_OUT\""
			done
		done
	} >"$TEST_TMP/$name.sql"
	: >"$TEST_TMP/$name.rss"
	psql -X -q -f "$TEST_TMP/$name.sql" >"$TEST_TMP/$name.log" 2>&1
}
start=$SECONDS
session memory_flat_a "${calls[@]:0:9}" "${calls[@]:11}" &
pids=($!)
session memory_flat_b "${calls[9]}" &
pids+=($!)
session memory_flat_c "${calls[10]}" &
pids+=($!)
for s in a b c; do
	wait "${pids[0]}" || fail "session memory_flat_$s failed: $(tail -5 "$TEST_TMP/memory_flat_$s.log")"
	pids=("${pids[@]:1}")
done
echo "  (the sessions took $((SECONDS - start)) s)"
out=$TEST_TMP/memory_flat.rss
cat "$TEST_TMP"/memory_flat_[abc].rss >"$out"

# growth per function between its call 20 and its call 200
n=0
while read -r name calls20 kb20 t20 && read -r _ calls200 kb200 t200; do
	n=$((n + 1))
	growth=$((kb200 - kb20))
	secs=$(awk -v a="$t20" -v b="$t200" 'BEGIN {printf "%.1f", b - a}')
	if [ -n "${HARNESS_SANITIZER_DIR:-}" ]; then
		# AddressSanitizer keeps freed memory in its quarantine and adds shadow memory: the
		# calls run under it, but RssAnon says nothing about our memory there
		pass "$name: 180 calls under AddressSanitizer (RssAnon growth $growth kB, bound not checked)"
	elif [ "$growth" -lt "$LIMIT_KB" ]; then
		pass "$name: RssAnon $kb20 kB at call 20, $kb200 kB at call 200 (growth $growth kB, 180 calls in $secs s)"
	else
		fail "$name: RssAnon $kb20 kB at call 20, $kb200 kB at call 200 (growth $growth kB >= $LIMIT_KB kB)"
	fi
done <"$out"
check_eq "$n" "${#calls[@]}" "every function measured"

q "SET client_min_messages = warning; DROP SCHEMA $S CASCADE"
q "DELETE FROM mnist_models WHERE name LIKE 'memory\_flat%'"

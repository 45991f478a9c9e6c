#!/bin/bash
# not_preloaded: everything but the background workers works on a cluster that does not
# preload the library (the README says shared_preload_libraries is needed only for change data
# capture and online learning).  A fresh cluster without shared_preload_libraries: CREATE
# EXTENSION keeps the session (it once died of FATAL: "cannot create PGC_POSTMASTER variables
# after startup"), every setting is there, and training, prediction, the classify trigger,
# evaluation and the topic functions (against the harness's broker) work; mnist_online_start
# is refused with the reason (no worker would ever run the job).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

D=$TEST_TMP/not_preloaded
pg_initdb "$D" || fail "initdb"
port=$(kafka_free_port $((HARNESS_PORT_BASE + 80)))
cat >>"$D/data/postgresql.conf" <<-CONF
	port = $port
	listen_addresses = ''
	unix_socket_directories = '$D'
	mnist_ml.kafka_bootstrap_servers = '$KAFKA_BOOTSTRAP'
CONF
at_exit "as_postgres '$HARNESS_PG_BINDIR/pg_ctl' -D '$D/data' -m immediate -w stop >/dev/null 2>&1"
# shellcheck disable=SC2086
as_postgres env $HARNESS_SERVER_ENV "$HARNESS_PG_BINDIR/pg_ctl" -D "$D/data" -l "$D/log" -w start >/dev/null ||
	fail "start"
export PGHOST=$D PGPORT=$port
check_eq "$(q 'SHOW shared_preload_libraries')" "" "the cluster does not preload mnist_ml"

# CREATE EXTENSION and a statement after it in the same session: a FATAL ends the session
out=$(psql_out "CREATE EXTENSION mnist_ml" \
	"SELECT 'session alive', current_setting('mnist_ml.online_database') = ''")
check_eq "$out" 'session alive|t' "CREATE EXTENSION keeps the session; online_database is defined ('')"
check_eq "$(grep -c FATAL "$D/log")" 0 "no FATAL in the server log"

T=not_preloaded
broker_create_topic "$T" 1 || fail "create topic $T"
topic_messages "$MNIST_DATA/digits/t10k-images-idx3-ubyte" "$MNIST_DATA/digits/t10k-labels-idx1-ubyte" \
	0 300 >"$TEST_TMP/$T.msgs"
topic_produce "$T" "$TEST_TMP/$T.msgs" || fail "produce to $T"

psql -X -q -v ON_ERROR_STOP=1 -f "$MNIST_DATA/digits/mnist_train.sql" -f "$MNIST_DATA/digits/mnist_test.sql" \
	>/dev/null || fail "load the digits"
out=$(psql -X -qAt -v ON_ERROR_STOP=1 2>&1 <<-SQL
	SET mnist_ml.progress = off;
	SELECT mnist_train('mnist_train', 'np', epochs => 2, seed => 1) > 0;
	SELECT accuracy >= 0.6 FROM mnist_evaluate('mnist_test', 'np');
	SELECT count(*) FILTER (WHERE mnist_predict(pixels, 'np') = label) > 60 FROM mnist_test WHERE id <= 100;
	SELECT cardinality(mnist_predict_proba(pixels, 'np')) FROM mnist_test WHERE id = 1;
	CREATE TABLE scans (pixels bytea, predicted smallint);
	CREATE TRIGGER classify BEFORE INSERT ON scans
		FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'np');
	INSERT INTO scans (pixels) SELECT pixels FROM mnist_test WHERE id <= 10;
	SELECT count(predicted) FROM scans;
	SELECT mnist_train_topic('$T', 'np_topic', epochs => 1, seed => 1) > 0;
	SELECT rows FROM mnist_evaluate_topic('$T', 'np', group_id => 'np_eval', stream_timeout_ms => 1000);
	SELECT count(*) FROM mnist_predict_topic('$T', 'np', group_id => 'np_pred', stream_timeout_ms => 1000);
SQL
)
check_eq "$out" $'t\nt\nt\n10\n10\nt\n300\n300' \
	"train, evaluate, predict, predict_proba, the classify trigger and the topic functions"

out=$(psql_out "SELECT mnist_online_start('np', '$T', 'mnist_test')")
check_eq "$(grep -c 'online learning needs mnist_ml in shared_preload_libraries' <<<"$out")" 1 \
	"mnist_online_start is refused: no online learning worker runs"
check_eq "$(q "SELECT count(*) FROM mnist_online_jobs")" 0 "no job registered"
check_eq "$(grep -c FATAL "$D/log")" 0 "still no FATAL in the server log"

#!/bin/bash
# standby: scoring scales out on PostgreSQL's own streaming replicas.  A hot standby of the
# harness cluster (pg_basebackup -R, streaming over loopback, its own port and data directory,
# the same preloaded library) serves mnist_predict and mnist_evaluate with the replicated
# models.  A model stored or deployed on the primary is served by the standby from the next
# statement after its replay, also in a standby session that had cached the model before: the
# invalidation travels in the primary's commit record and is replayed.  The functions that
# write fail on the standby with 25006; the CDC and online learning workers do not run there
# until it is promoted; promoted, the CDC worker creates its own slot and sends a fresh
# snapshot of the captured tables.
source "$(dirname "$0")/../lib.sh"

db=standby_db
sdir=$HARNESS_DIR/standby
sdata=$sdir/pgdata
slog=$sdir/postgresql.log
ssock=$sdir/socket
prefix=standby_$$	# the promoted standby's topic prefix (its own settings): a topic of its own
topic=$prefix.public.standby_rows

rm -rf "$sdir"
at_exit "rm -rf '$sdir'"
pg_standby() {
	as_postgres "$HARNESS_PG_BINDIR/pg_ctl" -D "$sdata" "$@"
}
at_exit "[ -f '$sdata/postmaster.pid' ] && { pg_standby -m fast -w -t 60 stop >/dev/null 2>&1 || pg_standby -m immediate -w stop >/dev/null 2>&1; }"
at_exit "[ \$HARNESS_CHECKS_FAILED = 0 ] || { echo '---- the standby log (last 30 lines)'; tail -n 30 '$slog'; }"
at_exit "q 'DROP TABLE IF EXISTS standby_rows' >/dev/null 2>&1; psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS $db' >/dev/null 2>&1"

# s "SQL" [psql options]: q on the standby, in $db.
s() {
	local sql=$1
	shift
	psql -X -qAt -v ON_ERROR_STOP=1 -h "$ssock" -p "$sport" -d "$db" "$@" -c "$sql"
}
p() { PGDATABASE=$db q "$@"; }

# s_error "SQL": the standby's "SQLSTATE: message" of the ERROR the statement raises.
s_error() {
	s "$1" -v VERBOSITY=verbose 2>&1 >/dev/null | sed -n 's/^ERROR:  //p'
}

# replayed: wait (bounded) until the standby has replayed everything the primary has written.
replayed() {
	local lsn
	lsn=$(q "SELECT pg_current_wal_lsn()")
	wait_for "[ \"\$(s \"SELECT pg_last_wal_replay_lsn() >= '$lsn'\")\" = t ]" 60 \
		"the standby replayed up to $lsn"
}

# ---- models on the primary
q "DROP DATABASE IF EXISTS $db"
q "CREATE DATABASE $db"
PGDATABASE=$db psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL || fail "training on the primary failed"
CREATE EXTENSION mnist_ml;
SET mnist_ml.progress = off;
\set ECHO none
\i $MNIST_DATA/digits/mnist_train.sql
\i $MNIST_DATA/digits/mnist_test.sql
CREATE TABLE small AS SELECT pixels, label FROM mnist_train ORDER BY id LIMIT 2000;
SELECT mnist_train('small', 'replica', epochs => 1);
SQL
q "CREATE TABLE standby_rows (id serial PRIMARY KEY, label smallint, pixels bytea)"
PGDATABASE=$db psql -X -qAt -v ON_ERROR_STOP=1 -c "COPY (SELECT label, pixels FROM mnist_test ORDER BY id LIMIT 100) TO STDOUT" |
	q "COPY standby_rows (label, pixels) FROM STDIN" || fail "filling standby_rows"
a_id=$(p "SELECT max(id) FROM mnist_models WHERE name = 'replica'")
predictions="SELECT md5(string_agg(mnist_predict(pixels, 'replica')::text, ',' ORDER BY id)) FROM mnist_test"
md5_a=$(p "$predictions")

# ---- the standby: a base backup streaming over loopback, its own port, socket and settings
mkdir -p "$sdir" "$ssock" && chown postgres: "$sdir" "$ssock" && touch "$slog" && chown postgres: "$slog"
as_postgres "$HARNESS_PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U postgres -D "$sdata" \
	-R -X stream -c fast >"$sdir/basebackup.log" 2>&1 || { cat "$sdir/basebackup.log"; fail "pg_basebackup"; exit 1; }
sport=$((PGPORT + 1))
while ! _port_free "$sport"; do sport=$((sport + 1)); done
# It captures only standby_rows, into its own topic prefix, so that a promotion sends nothing
# into the topics of other tests.
cat >>"$sdata/postgresql.conf" <<EOF

# standby of the mnist_ml test harness (test/integration/standby.sh)
port = $sport
unix_socket_directories = '$ssock'
hot_standby = on
mnist_ml.topic_prefix = '$prefix'
mnist_ml.cdc_tables = 'public.standby_rows'
EOF
pg_start_other "$sdata" "$slog" || { fail "the standby did not start"; exit 1; }
check_eq "$(s "SELECT pg_is_in_recovery()")" t "the standby runs in recovery on port $sport"
wait_for "[ \"\$(q \"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND client_addr = '127.0.0.1'\")\" = 1 ]" 60 \
	"the standby streams from the primary over loopback"

# ---- scoring on the standby with the replicated model
check_eq "$(s "$predictions")" "$md5_a" "mnist_predict on the standby: the primary's classes for 2,000 digits"
check_eq "$(s "SELECT md5(string_agg(mnist_predict_proba(pixels, 'replica')::text, ',' ORDER BY id)) FROM mnist_test WHERE id % 10 = 0")" \
	"$(p "SELECT md5(string_agg(mnist_predict_proba(pixels, 'replica')::text, ',' ORDER BY id)) FROM mnist_test WHERE id % 10 = 0")" \
	"mnist_predict_proba on the standby: the primary's probabilities"
check_eq "$(s "SELECT concat_ws(' ', rows, loss, accuracy) FROM mnist_evaluate('mnist_test', 'replica')")" \
	"$(p "SELECT concat_ws(' ', rows, loss, accuracy) FROM mnist_evaluate('mnist_test', 'replica')")" \
	"mnist_evaluate on the standby: the primary's rows, loss and accuracy"
check_eq "$(s "SELECT concat_ws(' ', rows, accuracy) FROM mnist_evaluate('mnist_test', $a_id)")" \
	"$(p "SELECT concat_ws(' ', rows, accuracy) FROM mnist_evaluate('mnist_test', $a_id)")" \
	"mnist_evaluate by model id on the standby"
check_eq "$(s "SELECT sum(count) FROM mnist_confusion_matrix('mnist_test', 'replica') WHERE label = predicted")" \
	"$(p "SELECT sum(count) FROM mnist_confusion_matrix('mnist_test', 'replica') WHERE label = predicted")" \
	"mnist_confusion_matrix on the standby"

# ---- one standby session kept open: psql reading a FIFO, each statement closed by a marker
mkfifo "$sdir/session.in"
chmod 666 "$sdir/session.in"
psql -X -qAt -h "$ssock" -p "$sport" -d "$db" <"$sdir/session.in" >"$sdir/session.out" 2>&1 &
session_pid=$!
exec 7>"$sdir/session.in"
at_exit "exec 7>&-; kill $session_pid 2>/dev/null"
echo '\echo @0' >&7
session_n=0
# in_session "SQL": runs SQL in that session; its output goes to $session_result (waits at most
# 120 s).  Not in a $(...) subshell: the marker count must survive.
in_session() {
	local prev=$session_n i
	session_n=$((session_n + 1))
	printf '%s;\n\\echo @%d\n' "$1" "$session_n" >&7
	for ((i = 0; i < 1200; i++)); do
		grep -qx "@$session_n" "$sdir/session.out" && break
		sleep 0.1
	done
	session_result=$(awk -v a="@$prev" -v b="@$session_n" '$0 == b { exit } f { print } $0 == a { f = 1 }' \
		"$sdir/session.out")
}
in_session "SELECT pg_backend_pid()"
session_backend=$session_result
in_session "$predictions"
check_eq "$session_result" "$md5_a" "a standby session serves model $a_id (and caches it)"

# stored on the primary: the same standby session serves it after replay
p "SET mnist_ml.progress = off; SELECT mnist_train('small', 'replica', epochs => 2, seed => 7)" >/dev/null ||
	fail "storing a second model on the primary"
b_id=$(p "SELECT max(id) FROM mnist_models WHERE name = 'replica'")
md5_b=$(p "$predictions")
[ "$md5_b" != "$md5_a" ] && pass "the primary serves the new model $b_id, which classifies differently" ||
	fail "models $a_id and $b_id classify the test digits alike: the test cannot tell them apart"
replayed
in_session "$predictions"
check_eq "$session_result" "$md5_b" \
	"the same standby session serves the model stored on the primary from its next statement after replay"
in_session "SELECT pg_backend_pid() = $session_backend"
check_eq "$session_result" t "(still the same standby backend)"

# deployed on the primary (back to the first model)
check_eq "$(p "SELECT mnist_deploy('replica', $a_id)")" "$a_id" "mnist_deploy of model $a_id on the primary"
replayed
in_session "$predictions"
check_eq "$session_result" "$md5_a" \
	"the same standby session serves the deployed model from its next statement after replay"
check_eq "$(s "$predictions")" "$md5_a" "a new standby session serves the deployed model too"
# and a rollback
check_eq "$(p "SELECT mnist_rollback('replica')")" "$b_id" "mnist_rollback on the primary"
replayed
in_session "$predictions"
check_eq "$session_result" "$md5_b" "the same standby session follows the rollback"
in_session "SELECT pg_backend_pid() = $session_backend"
check_eq "$session_result" t "(still the same standby backend)"

# ---- functions that write: a clean read-only ERROR (25006) on the standby
check_eq "$(s_error "SELECT mnist_train('small', 'replica', epochs => 1)")" \
	"25006: cannot execute mnist_train() in a read-only transaction" "mnist_train on the standby"
check_eq "$(s_error "SELECT mnist_deploy('replica', $a_id)")" \
	"25006: cannot execute mnist_deploy() in a read-only transaction" "mnist_deploy on the standby"
check_eq "$(s_error "SELECT mnist_rollback('replica')")" \
	"25006: cannot execute mnist_rollback() in a read-only transaction" "mnist_rollback on the standby"
check_eq "$(s_error "SELECT mnist_online_start('replica', 'standby.none', 'small')")" \
	"25006: cannot execute mnist_online_start() in a read-only transaction" "mnist_online_start on the standby"
check_eq "$(s_error "SELECT mnist_online_stop('replica')")" \
	"25006: cannot execute mnist_online_stop() in a read-only transaction" "mnist_online_stop on the standby"
check_eq "$(s_error "SELECT mnist_model_reassign('replica', 'postgres')")" \
	"25006: cannot execute UPDATE in a read-only transaction" "mnist_model_reassign on the standby"
# mnist_cdc_snapshot writes no table but stamps messages with a WAL position, which a standby
# does not have (its topic does not exist: a snapshot that went ahead would fail later, on Kafka)
check_eq "$(s_error "SELECT mnist_cdc_snapshot('mnist_test')")" \
	"25006: cannot execute mnist_cdc_snapshot() during recovery" "mnist_cdc_snapshot on the standby"
check_eq "$(s "SELECT count(*) FROM mnist_models")" "$(p "SELECT count(*) FROM mnist_models")" \
	"the standby still has exactly the primary's models"

# ---- the workers wait for promotion
check_eq "$(s "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('mnist_ml cdc', 'mnist_ml online')")" 0 \
	"no CDC or online learning worker runs on the standby"
check_eq "$(s "SELECT concat_ws(' ', state, pid, slot_name) FROM mnist_cdc_status" -d postgres)" standby \
	"mnist_cdc_status on the standby: state standby, no worker, no slot"

# ---- promotion: the CDC worker starts with a slot of its own and a fresh snapshot
broker_create_topic "$topic" 4 || fail "creating $topic"
replayed
pg_standby -w -t 120 promote >/dev/null || fail "pg_ctl promote"
check_eq "$(s "SELECT pg_is_in_recovery()")" f "the standby is promoted"
wait_for "[ \"\$(s \"SELECT state FROM mnist_cdc_status\" -d postgres)\" = streaming ]" 120 \
	"the promoted node's CDC worker streams"
check_eq "$(s "SELECT slot_name FROM pg_replication_slots WHERE plugin = 'mnist_ml'" -d postgres)" mnist_ml_cdc \
	"it created its slot on the promoted node"
grep -q 'initial snapshot of public.standby_rows: 100 rows' "$slog" &&
	pass "it sent a fresh initial snapshot: 100 rows" || fail "no initial snapshot of standby_rows in the standby's log"
wait_for "[ \"\$(topic_total $topic)\" = 100 ]" 60 "the snapshot's 100 rows are in $topic"
s "INSERT INTO standby_rows (label, pixels) SELECT label, pixels FROM standby_rows ORDER BY id LIMIT 50" -d postgres ||
	fail "inserting on the promoted node"
wait_for "[ \"\$(topic_total $topic)\" = 150 ]" 60 "rows inserted on the promoted node reach $topic"
wait_for "[ \"\$(s \"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mnist_ml online'\" -d postgres)\" = 1 ]" 60 \
	"the online learning worker runs on the promoted node"
check_eq "$(s "SELECT mnist_deploy('replica', $a_id)")" "$a_id" "the promoted node deploys"

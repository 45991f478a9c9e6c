#!/bin/bash
# cdc_failover: failover slots (PostgreSQL 17+).  The CDC worker's slot is a failover slot; a
# physical standby (pg_basebackup over loopback, its own physical slot, sync_replication_slots)
# keeps a synchronized copy, and the primary names the standby's slot in
# synchronized_standby_slots, so the worker never sends what the standby has not received.
# Rows stream, the primary is killed (-m immediate) mid-stream, the standby is promoted: its
# worker continues from the synchronized slot (no new slot, no new snapshot), and every row
# the promoted server holds is on the topic, none that it does not hold (Kafka's Java
# consumer reads the topic).  Before 17 there are no failover slots: the test says so and
# checks nothing (standby.sh covers what a promotion does there: a new slot and snapshot).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ "$major" -lt 17 ]; then
	echo "  PostgreSQL $major has no failover slots: nothing to test here (see standby.sh)"
	exit 0
fi

t=mnist_failover
topic=tf.public.$t
src=failover_src
sdir=$HARNESS_DIR/failover
sdata=$sdir/pgdata
slog=$sdir/postgresql.log
ssock=$sdir/socket
pslot=failover_standby

pg_standby() {
	as_postgres "$HARNESS_PG_BINDIR/pg_ctl" -D "$sdata" "$@"
}
s() {	# s "SQL": q on the standby
	psql -X -qAt -v ON_ERROR_STOP=1 -h "$ssock" -p "$sport" -d postgres -c "$1"
}
at_exit "rm -rf '$sdir'"
at_exit "[ -f '$sdata/postmaster.pid' ] && pg_standby -m immediate -w stop >/dev/null 2>&1"
at_exit "[ \$HARNESS_CHECKS_FAILED = 0 ] || { echo '---- the standby log (last 40 lines)'; tail -n 40 '$slog'; }"
# the harness's primary back, as it was
at_exit "q 'SELECT 1' >/dev/null 2>&1 || pg_start; q \"ALTER SYSTEM RESET synchronized_standby_slots\" >/dev/null; q 'SELECT pg_reload_conf()' >/dev/null; q \"SELECT pg_drop_replication_slot('$pslot') FROM pg_replication_slots WHERE slot_name = '$pslot'\" >/dev/null; q 'DROP TABLE IF EXISTS $t, $src' >/dev/null"

check_eq "$(q "SELECT failover FROM pg_replication_slots WHERE slot_name = 'mnist_ml_cdc'")" t \
	"PostgreSQL $major: the CDC worker's slot is a failover slot"

q "DROP TABLE IF EXISTS $t, $src"
cdc_staging "$src"
broker_create_topic "$topic" 4 || fail "create $topic"
q "CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"

# ---- the standby, with its physical slot named in the primary's synchronized_standby_slots
q "SELECT pg_create_physical_replication_slot('$pslot', true)" >/dev/null || fail "create $pslot"
q "ALTER SYSTEM SET synchronized_standby_slots = '$pslot'" && q "SELECT pg_reload_conf()" >/dev/null
mkdir -p "$sdir" "$ssock" && chown postgres: "$sdir" "$ssock" && touch "$slog" && chown postgres: "$slog"
as_postgres "$HARNESS_PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U postgres -D "$sdata" \
	-X stream -c fast -S "$pslot" >"$sdir/basebackup.log" 2>&1 || { cat "$sdir/basebackup.log"; fail "pg_basebackup"; exit 1; }
sport=$((PGPORT + 2))
while ! _port_free "$sport"; do sport=$((sport + 1)); done
touch "$sdata/standby.signal" && chown postgres: "$sdata/standby.signal"
cat >>"$sdata/postgresql.conf" <<EOF

# failover standby of the mnist_ml test harness (test/integration/cdc_failover.sh)
port = $sport
unix_socket_directories = '$ssock'
hot_standby = on
primary_conninfo = 'host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres'
primary_slot_name = '$pslot'
hot_standby_feedback = on
sync_replication_slots = on
EOF
sed -i '/^synchronized_standby_slots/d' "$sdata/postgresql.auto.conf"
pg_start_other "$sdata" "$slog" || { fail "the standby did not start"; exit 1; }
check_eq "$(s "SELECT pg_is_in_recovery()")" t "the standby runs in recovery on port $sport"
wait_for "[ \"\$(s \"SELECT synced AND failover AND NOT temporary FROM pg_replication_slots WHERE slot_name = 'mnist_ml_cdc'\")\" = t ]" 120 \
	"the standby holds a synchronized, persistent copy of the CDC slot"

# ---- rows stream; the primary is killed mid-stream
cdc_writer "$src" "$t" 40 0.1 &
writer=$!
at_exit "kill $writer 2>/dev/null"
wait_for "[ \"\$(q \"SELECT count(*) >= 2500 FROM $t\")\" = t ] && [ \"\$(q 'SELECT acknowledged > 0 FROM mnist_cdc_status')\" = t ]" 120 \
	"rows are committed and streaming"
pg_stop_immediate || fail "kill the primary with -m immediate"
kill "$writer" 2>/dev/null
wait "$writer" 2>/dev/null
held_before=$(s "SELECT count(*) FROM $t")
echo "  the primary was killed with $held_before rows on the standby"

# ---- promotion: the worker continues from the synchronized slot
pg_standby -w -t 120 promote >/dev/null || fail "pg_ctl promote"
check_eq "$(s "SELECT pg_is_in_recovery()")" f "the standby is promoted"
wait_for "[ \"\$(s 'SELECT state FROM mnist_cdc_status')\" = streaming ]" 120 \
	"the promoted server's CDC worker streams"
check_eq "$(grep -c 'created slot "mnist_ml_cdc"' "$slog")" 0 \
	"it created no slot and sent no new snapshot: it continues from the synchronized one"
s "INSERT INTO $t (label, pixels) SELECT label, overlay(pixels placing '\\xff'::bytea from 1 for 1) FROM $src WHERE id <= 500" >/dev/null ||
	fail "insert on the promoted server"
lsn=$(s "SELECT pg_current_wal_lsn()")
wait_for "[ \"\$(s \"SELECT confirmed_lsn >= '$lsn' FROM mnist_cdc_status\")\" = t ]" 120 \
	"the promoted server's worker acknowledged everything it holds"

# ---- every row the promoted server holds is on the topic, and nothing else
psql -X -qAt -F $'\t' -h "$ssock" -p "$sport" -d postgres -c "SELECT label, encode(pixels, 'hex') FROM $t" |
	$PY -c '
import sys
for line in sys.stdin:
    k, h = line.rstrip("\n").split("\t")
    print(k + "\t" + ",".join(str(b) for b in bytes.fromhex(h)))' | LC_ALL=C sort >"$TEST_TMP/failover.expected"
cdc_topic_pairs "$topic" "$TEST_TMP/failover.actual"
cdc_compare "$TEST_TMP/failover.expected" "$TEST_TMP/failover.actual" \
	"the promoted server's rows on $topic" dups-allowed
pg_standby -m fast -w -t 60 stop >/dev/null 2>&1

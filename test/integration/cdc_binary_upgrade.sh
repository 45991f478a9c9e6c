#!/bin/bash
# cdc_binary_upgrade: a server started by pg_upgrade (binary-upgrade mode, postgres -b) with
# mnist_ml preloaded starts no CDC worker; the same cluster started normally does.
source "$(dirname "$0")/../lib.sh"

D=$TEST_TMP/binary_upgrade
pg_initdb "$D" || fail "initdb"
port=$(kafka_free_port $((HARNESS_PORT_BASE + 400)))
cat >>"$D/data/postgresql.conf" <<-CONF
	port = $port
	listen_addresses = ''
	unix_socket_directories = '$D'
	wal_level = logical
	shared_preload_libraries = 'mnist_ml'
	mnist_ml.kafka_bootstrap_servers = '$KAFKA_BOOTSTRAP'
CONF
at_exit "as_postgres '$HARNESS_PG_BINDIR/pg_ctl' -D '$D/data' -m immediate -w stop >/dev/null 2>&1"
workers() {	# the postmaster's children that are the CDC worker
	ps --ppid "$(head -1 "$D/data/postmaster.pid")" -o args= | grep -c 'mnist_ml change data capture'
}

as_postgres env $HARNESS_SERVER_ENV "$HARNESS_PG_BINDIR/pg_ctl" -D "$D/data" -l "$D/log" -o "-b" -w start >/dev/null ||
	fail "start in binary-upgrade mode"
sleep 3	# the worker would start at once (BgWorkerStart_RecoveryFinished)
check_eq "$(workers)" 0 "binary-upgrade mode: no CDC worker"
as_postgres "$HARNESS_PG_BINDIR/pg_ctl" -D "$D/data" -m fast -w stop >/dev/null || fail "stop"

as_postgres env $HARNESS_SERVER_ENV "$HARNESS_PG_BINDIR/pg_ctl" -D "$D/data" -l "$D/log" -w start >/dev/null || fail "start"
wait_for '[ "$(workers)" = 1 ]' 30 "started normally: the CDC worker runs"

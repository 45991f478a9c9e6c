#!/bin/bash
# installcheck_standalone: make installcheck works against a cluster set up as the README says,
# outside the harness: a fresh cluster whose postgresql.conf gets the README's own
# `postgresql.conf` block, and make run with a plain login PATH (without pg_config --bindir)
# and none of the harness's variables but the server's address and MNIST_DATA where it is not
# the default.  First the same cluster with wal_level = replica: installcheck refuses it with
# the fix, before pg_regress runs.
source "$(dirname "$0")/../lib.sh"

D=$TEST_TMP/installcheck_standalone
pg_initdb "$D" || fail "initdb"
port=$(kafka_free_port $((HARNESS_PORT_BASE + 70)))

# The README's block, as a user copies it; output_plugin_libraries only where the server has it.
conf=$(awk '/^`postgresql.conf`:$/ {f = 1; next} f && /^```$/ {if (n++) exit; next} f && n' \
	"$HARNESS_ROOT/README.md")
grep -q '^wal_level = logical' <<<"$conf" || fail "the README's postgresql.conf block was not found"
as_postgres "$HARNESS_PG_BINDIR/postgres" -D "$D/data" -C output_plugin_libraries >/dev/null 2>&1 ||
	conf=$(grep -v '^output_plugin_libraries' <<<"$conf")
cat >>"$D/data/postgresql.conf" <<-CONF
	port = $port
	listen_addresses = ''
	unix_socket_directories = '$D'
	$conf
	wal_level = replica
CONF
at_exit "as_postgres '$HARNESS_PG_BINDIR/pg_ctl' -D '$D/data' -m immediate -w stop >/dev/null 2>&1"
start() {
	as_postgres env $HARNESS_SERVER_ENV "$HARNESS_PG_BINDIR/pg_ctl" -D "$D/data" -l "$D/log" -w start >/dev/null
}

# make installcheck as a user runs it: the harness's environment gone.
installcheck() {
	local data=()
	[ "$MNIST_DATA" = /var/cache/mnist_ml/data ] || data=(MNIST_DATA="$MNIST_DATA")
	env -u PGDATABASE -u MNIST_DATA -u KAFKA_BOOTSTRAP -u HARNESS_PG_BINDIR -u TEST_TMP \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		PGHOST="$D" PGPORT="$port" PGUSER=postgres "${data[@]}" \
		make -C "$HARNESS_ROOT" installcheck PG_CONFIG="$PG_CONFIG" \
		REGRESS="extension cdc_decoder loader_errors topic_args" \
		REGRESS_OPTS="--dbname=contrib_regression --outputdir=$D/out" "$@" >"$D/make.log" 2>&1
}

start || fail "start with wal_level = replica"
if installcheck; then
	fail "installcheck ran against wal_level = replica"
else
	check_eq "$(grep -c 'wal_level = replica: set wal_level = logical' "$D/make.log")" 1 \
		"wal_level = replica: refused with the fix, before pg_regress"
	check_eq "$(grep -c 'regression test' "$D/make.log")" 0 "pg_regress did not run"
fi

as_postgres "$HARNESS_PG_BINDIR/pg_ctl" -D "$D/data" -m fast -w stop >/dev/null || fail "stop"
as_postgres sed -i '$d' "$D/data/postgresql.conf"
start || fail "start as the README says"
if installcheck; then
	pass "make installcheck against the README's configuration"
else
	fail "make installcheck against the README's configuration"
	cat "$D/make.log" "$D/out/regression.diffs" 2>/dev/null | tail -n 60
fi
grep -E '^(ok|not ok|test) ' "$D/make.log" | sed 's/^/    /'
# pg_regress's lines: "test NAME ... ok" up to 15, TAP's "ok N - NAME" / "not ok N - NAME" since 16
check_eq "$(grep -cE '^(ok|not ok) [0-9]+ |^test .* \.\.\. (ok|FAILED|failed)' "$D/make.log")" 4 "four regress tests reported"

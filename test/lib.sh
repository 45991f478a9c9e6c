# test/lib.sh: the mnist_ml test harness, sourced by test/run, demo/run and every
# test/integration/*.sh (source "$(dirname "$0")/../lib.sh").
#
# test/run (or the demo) calls harness_start, which builds and installs the extension, starts
# a real Apache Kafka broker (test/kafka_lib.sh) and a throwaway PostgreSQL cluster, and exports:
#   PGHOST PGPORT PGUSER=postgres PGDATABASE=postgres  the cluster (mnist_ml created in postgres)
#   KAFKA_BOOTSTRAP  host:port of the broker (KAFKA_DIR, KAFKA_LIB, KAFKA_VERSION: see kafka_lib.sh)
#   MNIST_DATA       the prepared data directory (test/prepare-data)
#   PGDATA           the cluster's data directory
#   TEST_TMP         a scratch directory readable (and writable) by the server
# Scripts then use: q, pg_initdb, pg_start_other, pg_stop_immediate, pg_start, pg_reload, pass, fail, check_eq, wait_for,
# cancel_and_wait, at_exit, as_postgres, and the broker's functions of test/kafka_lib.sh (broker_create_topic,
# broker_kill, broker_restart, broker_freeze, kafka_dump, kafka_produce, ...).
# A script exits non-zero if any check failed.
# Drivers (test/run, demo/run) use: harness_setup (= harness_install_deps, harness_build,
# harness_prepare_data), harness_start, harness_stop, harness_keep.
#
# Sourcing this file installs an EXIT trap (plus INT/TERM): it runs at_exit commands, stops
# the harness if this shell started it, and turns recorded failures into exit status 1.
# A script that needs cleanup registers it with at_exit rather than its own trap.

HARNESS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HARNESS_ROOT
: "${PG_CONFIG:=pg_config}"
export PG_CONFIG
: "${MNIST_DATA:=/var/cache/mnist_ml/data}"
export MNIST_DATA
: "${HARNESS_PORT_BASE:=55420}"

# An integration script run on its own has no harness to talk to.
if [[ $0 == */integration/*.sh ]] && [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
	echo "$0: no harness running: use bash test/run --only $(basename "$0" .sh)" >&2
	exit 2
fi

HARNESS_CHECKS_FAILED=0
HARNESS_CHECKS_PASSED=0
_harness_started=
_harness_at_exit=()

# Put the bindir of the PostgreSQL in use first in PATH (psql, pg_ctl, mnist2sql, ...).
harness_path() {
	local bindir
	bindir=$("$PG_CONFIG" --bindir 2>/dev/null) || return 0
	HARNESS_PG_BINDIR=$bindir
	export HARNESS_PG_BINDIR
	case ":$PATH:" in
	":$bindir:"*) ;;
	*) PATH="$bindir:$PATH" ;;
	esac
	export PATH
}
harness_path

# ---------------------------------------------------------------- results

pass() {
	HARNESS_CHECKS_PASSED=$((HARNESS_CHECKS_PASSED + 1))
	echo "  ok: $*"
}

fail() {
	HARNESS_CHECKS_FAILED=$((HARNESS_CHECKS_FAILED + 1))
	echo "  FAILED: $*" >&2
	return 0
}

# check_eq ACTUAL EXPECTED "msg": pass or fail (returns 1 on failure).
check_eq() {
	if [ "$1" == "$2" ]; then
		pass "$3"
	else
		fail "$3: expected '$2', got '$1'"
		return 1
	fi
}

# wait_for "shell condition" TIMEOUT_S "msg": poll the condition (eval'd, output hidden) every
# 0.5 s; pass when it holds, fail (returns 1) when the time is up.
wait_for() {
	# Odd local names: the condition is eval'd here and may use the caller's variables.
	local _wf_cond=$1 _wf_timeout=$2 _wf_msg=$3 _wf_start=$SECONDS
	while :; do
		if eval "$_wf_cond" >/dev/null 2>&1; then
			pass "$_wf_msg ($((SECONDS - _wf_start)) s)"
			return 0
		fi
		if [ $((SECONDS - _wf_start)) -ge "$_wf_timeout" ]; then
			fail "$_wf_msg: not true after $_wf_timeout s: $_wf_cond"
			return 1
		fi
		sleep 0.5
	done
}

# cancel_and_wait BACKEND_PID JOB_PID "msg": pg_cancel_backend(BACKEND_PID), then poll every
# 10 ms, for at most 10 s, until the background job JOB_PID ends; pass with the time it took.
cancel_and_wait() {
	local _cw_start _cw_i
	check_eq "$(q "SELECT pg_cancel_backend($1)")" t "$3: pg_cancel_backend" || return 1
	_cw_start=$(date +%s%N)
	for ((_cw_i = 0; _cw_i < 1000; _cw_i++)); do
		kill -0 "$2" 2>/dev/null || break
		sleep 0.01
	done
	if kill -0 "$2" 2>/dev/null; then
		fail "$3: still running 10 s after the cancel"
		return 1
	fi
	pass "$3: stopped $((($(date +%s%N) - _cw_start) / 1000000)) ms after the cancel"
}

# at_exit "command": run the command when the script exits (before the harness stops).
at_exit() {
	_harness_at_exit+=("$1")
}

_harness_exit() {
	local rc=$? i
	trap - EXIT
	for ((i = ${#_harness_at_exit[@]} - 1; i >= 0; i--)); do
		eval "${_harness_at_exit[i]}" || true
	done
	if [ -n "$_harness_started" ]; then
		[ "$rc" -ne 0 ] && HARNESS_SHOW_LOG=1
		harness_stop
	fi
	if [ "$rc" -eq 0 ] && [ "$HARNESS_CHECKS_FAILED" -gt 0 ]; then
		echo "$HARNESS_CHECKS_FAILED check(s) failed" >&2
		rc=1
	fi
	exit "$rc"
}
trap _harness_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- running as postgres

# Run a command as the postgres user (PostgreSQL refuses to run as root).
as_postgres() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# q "SQL" [psql options]: run SQL in $PGDATABASE, print unaligned tuples only.
q() {
	local sql=$1
	shift
	psql -X -qAt -v ON_ERROR_STOP=1 "$@" -c "$sql"
}

# ---------------------------------------------------------------- the Kafka broker

source "$HARNESS_ROOT/test/kafka_lib.sh"

# Build test/kafka_admin (the harness's admin client) with the librdkafka the extension uses
# (pkg-config, an rpath for a build of one's own) when missing, older than its source or built
# against another librdkafka (the flags are kept in test/.kafka_admin-flags).
harness_build_kafka_admin() {
	local src=$HARNESS_ROOT/test/kafka_admin.c bin=$HARNESS_ROOT/test/kafka_admin
	local stamp=$HARNESS_ROOT/test/.kafka_admin-flags flags
	# -isystem: a newer librdkafka's header trips -Wextra (its own warnings, not ours)
	flags="$(pkg-config --cflags rdkafka | sed 's/-I/-isystem /g') $(pkg-config --libs rdkafka) $(harness_rdkafka_rpath)" || return 1
	if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$flags" ]; then
		# shellcheck disable=SC2086
		gcc -O2 -Wall -Wextra -o "$bin" "$src" $flags || return 1
		echo "$flags" >"$stamp"
	fi
}

# harness_rdkafka_rpath: -Wl,-rpath,DIR when pkg-config's librdkafka is not the system's.
harness_rdkafka_rpath() {
	local dir
	dir=$(pkg-config --variable=libdir rdkafka) || return 1
	case $dir in
	/usr/lib | /usr/lib/* | /lib | /lib/*) ;;
	*) echo "-Wl,-rpath,$dir" ;;
	esac
}

# ---------------------------------------------------------------- the leg: which PostgreSQL, which librdkafka

# harness_leg PG RDKAFKA: select what a run builds against and runs (test/run --pg, --rdkafka).
#   PG       empty or 15: PG_CONFIG as given (pg_config: Debian 12's PostgreSQL 15);
#            18: PostgreSQL 18 built once by test/build-deps pg18 (its pg_config).
#            17 is compiled against, not run (test/compile-check 17).
#   RDKAFKA  empty or debian: pkg-config's librdkafka (Debian 12's librdkafka-dev, 2.0.2);
#            current: librdkafka built once by test/build-deps librdkafka, found through
#            PKG_CONFIG_PATH at build time and through an rpath (Makefile) at run time.
harness_leg() {
	local prefix
	case $1 in
	'' | 15) ;;
	18)
		prefix=$(bash "$HARNESS_ROOT/test/build-deps" pg18) || return 1
		PG_CONFIG=$prefix/bin/pg_config
		;;
	17)
		echo "harness: PostgreSQL 17 is compiled against here, not run: bash test/compile-check 17" >&2
		return 1
		;;
	*)
		echo "harness: no PostgreSQL $1 leg (15, 18)" >&2
		return 1
		;;
	esac
	case $2 in
	'' | debian) ;;
	current)
		prefix=$(bash "$HARNESS_ROOT/test/build-deps" librdkafka) || return 1
		PKG_CONFIG_PATH=$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
		export PKG_CONFIG_PATH
		;;
	*)
		echo "harness: no librdkafka leg $2 (debian, current)" >&2
		return 1
		;;
	esac
	export PG_CONFIG
	harness_path
}

# harness_versions: one line naming what this run uses (after the build and the broker start).
harness_versions() {
	local lib rdkafka
	lib=$("$PG_CONFIG" --pkglibdir)/mnist_ml.so
	rdkafka=$(ldd "$lib" 2>/dev/null | awk '$1 ~ /^librdkafka\.so/ { print $3 }')
	echo "harness: leg: $("$PG_CONFIG" --version) (PG_CONFIG=$PG_CONFIG)," \
		"librdkafka $(pkg-config --modversion rdkafka) ($rdkafka), Apache Kafka $KAFKA_VERSION"
}

# ---------------------------------------------------------------- the cluster

# HARNESS_SERVER_ENV: NAME=VALUE words (no spaces) every server start gets in its environment:
# empty, or under bash test/run --sanitize the sanitizer runtimes preloaded (harness_sanitize).
# A script that starts a server of its own runs as_postgres env $HARNESS_SERVER_ENV pg_ctl ...
: "${HARNESS_SERVER_ENV:=}"
export HARNESS_SERVER_ENV

pg_ctl_() {
	# shellcheck disable=SC2086
	as_postgres env $HARNESS_SERVER_ENV "$HARNESS_PG_BINDIR/pg_ctl" -D "$PGDATA" "$@"
}

# pg_start: start the cluster (new session, so a test's process group can be killed safely).
pg_start() {
	# shellcheck disable=SC2086
	if [ "$(id -u)" = 0 ]; then
		setsid -w runuser -u postgres -- env $HARNESS_SERVER_ENV "$HARNESS_PG_BINDIR/pg_ctl" \
			-D "$PGDATA" -l "$HARNESS_PG_LOG" -w -t 120 start >/dev/null
	else
		setsid -w env $HARNESS_SERVER_ENV "$HARNESS_PG_BINDIR/pg_ctl" -D "$PGDATA" \
			-l "$HARNESS_PG_LOG" -w -t 120 start >/dev/null
	fi
}

# pg_start_other DATADIR LOG: start a cluster of a test's own (a standby) in a new session,
# as pg_start does the harness's; its log's last lines on failure.
pg_start_other() {
	if [ "$(id -u)" = 0 ]; then
		setsid -w runuser -u postgres -- "$HARNESS_PG_BINDIR/pg_ctl" -D "$1" -l "$2" -w -t 120 start >/dev/null
	else
		setsid -w "$HARNESS_PG_BINDIR/pg_ctl" -D "$1" -l "$2" -w -t 120 start >/dev/null
	fi || { tail -n 30 "$2"; return 1; }
}

# pg_initdb DIR: a second cluster, DIR/data, owned by postgres, trust authentication (tests that
# need a server of their own configure and start it).
pg_initdb() {
	as_postgres mkdir -p "$1" &&
		as_postgres "$HARNESS_PG_BINDIR/initdb" -D "$1/data" -U postgres -A trust --locale=C -N >/dev/null
}

# harness_sanitize DIR: the sanitized build and run of bash test/run --sanitize.  Every make
# builds with SANITIZE=1 (AddressSanitizer + UndefinedBehaviorSanitizer); servers start with
# the sanitizer runtimes preloaded (the library needs them loaded first); every sanitized
# process, server or program (mnist2sql, test/net_check), writes its reports to DIR/asan.PID
# or DIR/ubsan.PID instead of stderr.  harness_sanitizer_reports checks DIR at the end.
harness_sanitize() {
	local dir=$1 asan ubsan deps
	asan=$(gcc -print-file-name=libasan.so)
	ubsan=$(gcc -print-file-name=libubsan.so)
	if [ ! -e "$asan" ] || [ ! -e "$ubsan" ]; then
		echo "harness: the sanitizer runtimes (libasan, libubsan of gcc) are missing" >&2
		return 1
	fi
	rm -rf "$dir"
	mkdir -p "$dir" && chmod 1777 "$dir" || return 1
	HARNESS_SANITIZER_DIR=$dir
	SANITIZE=1
	# The server's own libraries are preloaded ahead of the runtimes, so that ASan is set up
	# before their constructors run: ld.so runs constructors in the reverse of the load order,
	# and with libasan first it would run last, set up lazily by the first malloc, which comes
	# from p11-kit's (through libldap and gnutls) or krb5's constructor while it holds a lock of
	# libc's (setlocale's, gettext's), which then never comes free: every server hangs at its
	# start.  verify_asan_link_order=0 allows that order; none of those libraries defines
	# malloc and the like, so ASan's interceptors still come before libc's.
	deps=$(ldd "$HARNESS_PG_BINDIR/postgres" | awk '$2 == "=>" && $3 ~ /^\// && $1 !~ /^lib(c|m|gcc_s)\.so/ { printf "%s:", $3 }')
	# Leak detection is off: a backend frees its memory contexts at exit, not each chunk, and
	# the postmaster's children never return from main.
	ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:log_path=$dir/asan:print_summary=1
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$dir/ubsan
	HARNESS_SERVER_ENV="LD_PRELOAD=$deps$(readlink -f "$asan"):$(readlink -f "$ubsan")"
	export HARNESS_SANITIZER_DIR SANITIZE ASAN_OPTIONS UBSAN_OPTIONS HARNESS_SERVER_ENV
	echo "harness: sanitized build (SANITIZE=1); servers run with libasan and libubsan preloaded (after the server's own libraries); reports in $dir"
}

# harness_sanitizer_reports: prints every sanitizer report written so far; false if any.
harness_sanitizer_reports() {
	local f n=0
	for f in "$HARNESS_SANITIZER_DIR"/*; do
		[ -s "$f" ] || continue
		n=$((n + 1))
		echo "---- sanitizer report $f"
		cat "$f"
	done
	echo "harness: $n sanitizer report(s) in $HARNESS_SANITIZER_DIR"
	[ "$n" = 0 ]
}

# pg_stop_immediate: crash-like stop (no checkpoint, recovery at next start).
pg_stop_immediate() {
	pg_ctl_ -m immediate -w stop >/dev/null
}

# pg_reload: reread postgresql.conf (and ALTER SYSTEM settings).
pg_reload() {
	pg_ctl_ reload >/dev/null
}

_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# harness_build: make and make install with $PG_CONFIG (output shown only on failure).
harness_build() {
	local log
	log=$(mktemp)
	echo "harness: building and installing mnist_ml (PG_CONFIG=$PG_CONFIG)"
	if ! (cd "$HARNESS_ROOT" && make -j2 PG_CONFIG="$PG_CONFIG" && make install PG_CONFIG="$PG_CONFIG") >"$log" 2>&1; then
		cat "$log"
		rm -f "$log"
		echo "harness: build failed" >&2
		return 1
	fi
	grep -E 'warning:' "$log" || true
	rm -f "$log"
	harness_path
	_harness_built=1
}

# harness_install_deps: test/install-deps (missing Debian packages).
harness_install_deps() {
	bash "$HARNESS_ROOT/test/install-deps" && harness_path
}

# harness_prepare_data: test/prepare-data "$MNIST_DATA" (it locks the directory and skips
# work already done).
harness_prepare_data() {
	if [ ! -x "$HARNESS_ROOT/test/prepare-data" ]; then
		echo "harness: test/prepare-data is missing" >&2
		return 1
	fi
	echo "harness: preparing data in $MNIST_DATA"
	"$HARNESS_ROOT/test/prepare-data" "$MNIST_DATA"
}

# harness_setup: everything before harness_start (packages, build and install, data).
harness_setup() {
	harness_install_deps && harness_build && harness_prepare_data
}

# harness_start: build+install (unless done), start the broker and the cluster, export env.
harness_start() {
	local i port ok logsize t
	[ -n "${_harness_built:-}" ] || harness_build || return 1
	harness_path
	_harness_started=1

	HARNESS_DIR=$(mktemp -d /tmp/mnist_ml-harness.XXXXXX) || return 1
	chmod 755 "$HARNESS_DIR"
	TEST_TMP=$HARNESS_DIR/tmp
	mkdir -m 1777 "$TEST_TMP"
	PGDATA=$HARNESS_DIR/pgdata
	HARNESS_PG_LOG=$HARNESS_DIR/postgresql.log
	HARNESS_SOCKET_DIR=$HARNESS_DIR/socket
	mkdir "$HARNESS_SOCKET_DIR"
	touch "$HARNESS_PG_LOG"
	[ "$(id -u)" = 0 ] && chown postgres: "$HARNESS_SOCKET_DIR" "$HARNESS_PG_LOG"
	export HARNESS_DIR TEST_TMP PGDATA HARNESS_PG_LOG HARNESS_SOCKET_DIR

	# The broker first: its address goes into postgresql.conf.
	harness_build_kafka_admin || return 1
	broker_start || return 1

	if [ "$(id -u)" = 0 ]; then
		mkdir -m 700 "$PGDATA" && chown postgres: "$PGDATA"
	fi
	if ! as_postgres "$HARNESS_PG_BINDIR/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 \
		--locale=C -N >"$HARNESS_DIR/initdb.log" 2>&1; then
		cat "$HARNESS_DIR/initdb.log" >&2
		return 1
	fi
	cat >"$PGDATA/pg_hba.conf" <<-EOF
		local all all trust
		host all all 127.0.0.1/32 trust
		local replication all trust
		host replication all 127.0.0.1/32 trust
	EOF
	cat >>"$PGDATA/postgresql.conf" <<-EOF

		# mnist_ml test harness
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$HARNESS_SOCKET_DIR'
		wal_level = logical
		max_replication_slots = 20
		max_wal_senders = 20
		max_worker_processes = 20
		max_connections = 60
		fsync = off
		full_page_writes = off
		lc_messages = 'C'
		log_line_prefix = '%m [%p] %q%a '
		shared_preload_libraries = 'mnist_ml'
		mnist_ml.kafka_bootstrap_servers = '$KAFKA_BOOTSTRAP'
	EOF
	# PostgreSQL 15.19+ loads output plugins only when listed; older servers lack the setting.
	if as_postgres "$HARNESS_PG_BINDIR/postgres" -D "$PGDATA" -C output_plugin_libraries \
		>/dev/null 2>&1; then
		echo "output_plugin_libraries = 'pgoutput, test_decoding, mnist_ml'" >>"$PGDATA/postgresql.conf"
	fi

	# A free port from the base; retry if another cluster took it meanwhile.
	port=$HARNESS_PORT_BASE
	ok=
	for ((i = 0; i < 50 && !ok; i++, port++)); do
		_port_free "$port" || continue
		echo "port = $port" >>"$PGDATA/postgresql.conf"
		PGPORT=$port
		export PGPORT
		logsize=$(stat -c %s "$HARNESS_PG_LOG")
		if pg_start; then
			ok=1
		else
			tail -c +$((logsize + 1)) "$HARNESS_PG_LOG" | grep -q 'could not bind' || break
			sed -i '$d' "$PGDATA/postgresql.conf"
		fi
	done
	if [ -z "$ok" ]; then
		echo "harness: the cluster did not start" >&2
		tail -n 30 "$HARNESS_PG_LOG" >&2
		return 1
	fi
	PGHOST=$HARNESS_SOCKET_DIR
	PGUSER=postgres
	PGDATABASE=postgres
	export PGHOST PGUSER PGDATABASE
	echo "harness: PostgreSQL $(q 'SHOW server_version') on port $PGPORT, socket $PGHOST, data $PGDATA"
	harness_versions
	if [ -n "${HARNESS_SANITIZER_DIR:-}" ] && ! grep -q libasan "/proc/$(head -n 1 "$PGDATA/postmaster.pid")/maps"; then
		echo "harness: the server runs without the sanitizer runtime" >&2
		return 1
	fi

	q "CREATE EXTENSION mnist_ml" || return 1
	for t in tf.public.mnist_train tf.public.mnist_test tf.public.mnist_manual; do
		broker_create_topic "$t" 16 || return 1
	done
	harness_write_env
}

# Write $HARNESS_DIR/env: sourcing it (then test/lib.sh) reaches a --keep'd harness.
harness_write_env() {
	local v
	for v in PGHOST PGPORT PGUSER PGDATABASE PGDATA KAFKA_BOOTSTRAP KAFKA_DIR KAFKA_LIB \
		KAFKA_VERSION MNIST_DATA TEST_TMP PG_CONFIG PKG_CONFIG_PATH HARNESS_DIR HARNESS_PG_LOG HARNESS_SOCKET_DIR; do
		printf 'export %s=%q\n' "$v" "${!v-}"
	done >"$HARNESS_DIR/env"
}

# harness_keep: leave the harness running when this shell exits and say how to reach it.
harness_keep() {
	_harness_started=
	cat <<-EOF
		harness: the cluster and the broker are left running:
		  psql:   psql -h $PGHOST -p $PGPORT -U postgres postgres
		  broker: Apache Kafka $KAFKA_VERSION at $KAFKA_BOOTSTRAP (kcat -b $KAFKA_BOOTSTRAP -L), log $KAFKA_DIR/logs/server.log
		  server log: $HARNESS_PG_LOG
		  shell:  source $HARNESS_DIR/env; source $HARNESS_ROOT/test/lib.sh   (then q, broker_kill, ...)
		  stop:   bash -c 'source $HARNESS_DIR/env; source $HARNESS_ROOT/test/lib.sh; harness_stop'
	EOF
}

# harness_stop: stop the cluster and the broker, keep the logs in $HARNESS_ROOT/log,
# remove the temporary directory.  Prints the server log's last errors when HARNESS_SHOW_LOG=1.
harness_stop() {
	local i logdir=$HARNESS_ROOT/log
	_harness_started=
	[ -n "${HARNESS_DIR:-}" ] && [ -d "$HARNESS_DIR" ] || return 0
	if [ -f "$PGDATA/postmaster.pid" ]; then
		pg_ctl_ -m fast -w -t 60 stop >/dev/null 2>&1 || pg_ctl_ -m immediate -w stop >/dev/null 2>&1
	fi
	[ -n "${KAFKA_DIR:-}" ] && broker_stop
	mkdir -p "$logdir"
	cp "$HARNESS_PG_LOG" "$logdir/postgresql.log" 2>/dev/null
	cp "$HARNESS_DIR/kafka/logs/server.log" "$logdir/kafka.log" 2>/dev/null
	if [ "${HARNESS_SHOW_LOG:-}" = 1 ]; then
		echo "---- the server log's last errors and warnings (all of it: $logdir/postgresql.log)"
		grep -E ' (ERROR|FATAL|PANIC|WARNING|DETAIL|HINT|STATEMENT): ' "$logdir/postgresql.log" | tail -n 40
		echo "---- (the Kafka broker's log: $logdir/kafka.log)"
	fi
	rm -rf "$HARNESS_DIR"
	HARNESS_DIR=
}

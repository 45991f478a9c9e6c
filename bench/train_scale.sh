#!/bin/bash
# bench/train_scale.sh: mnist_train as its source grows: 60,000, 600,000 and 1,200,000 rows.
#
# The tables repeat Fashion-MNIST's 60,000 training rows 1, 10 and 20 times (INSERT ... SELECT
# FROM generate_series(1, N), mnist_train; the largest is about 1 GB), VACUUM ANALYZEd.  Every
# training is one epoch of 784 -> 128 -> 10, batch 64, seed 0, with mnist_ml.progress on: the
# read time and the epoch time are those its NOTICEs report.  Reported, in one run:
#   read     rows/s of mnist_train's read of the source (SPI scan into its training set)
#            against a plain SELECT sum(length(pixels)) + sum(label) FROM t of the same table,
#            run twice right before it in the same backend, serial (the second run's EXPLAIN
#            (ANALYZE, TIMING OFF) execution time: the table cached alike for both)
#   epoch    rows/s of the epoch with the whole set in memory (mnist_ml.train_memory = '2GB'),
#            with mnist_ml.train_threads 1 and THREADS, and the ratio to the 60,000-row figure
#            of the same thread count
#   memory   peak RssAnon (the highest of the rounds) of the backend (the training's own memory: its shared buffers are
#            RssShmem, not counted) while training the largest table with the default cap
#            (-1: maintenance_work_mem), with 100MB, and with 2GB (all of it in memory); RssAnon
#            of /proc/PID/status is sampled every 50 ms from here (VmHWM would count the shared
#            buffers the scan touches), and the whole call's time
# Each figure is the best of ROUNDS rounds (default 2), the configurations interleaved within a
# round; every round is printed.  The model must not depend on the thread count: the script
# checks that 1 and THREADS threads store the same weights for each table in memory.
#
# Usage: MNIST_DATA=dir [PGHOST=.. PGPORT=.. PGUSER=.. PGDATABASE=..] bash bench/train_scale.sh
# (bench/run train_scale runs it in the test harness' server).  The server must run on this
# machine (the backend's /proc is read).  Everything lives in a scratch schema bench_train_scale,
# dropped at the end.  env: ROUNDS (2), THREADS (2), SCALES ("1 10 20")
set -euo pipefail
: "${MNIST_DATA:?set MNIST_DATA to the prepared data directory (test/prepare-data)}"
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
SCALES=${SCALES:-1 10 20}
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
tmp=$(mktemp -d /tmp/train-scale.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
largest=$(printf '%s\n' $SCALES | sort -n | tail -1)

setup() {
	"${PSQL[@]}" -v bench="$(dirname "$0")" -v data="$MNIST_DATA" <<-'SQL'
		\set schema bench_train_scale
		\set f :bench '/setup.psql'
		\i :f
		\set ECHO none
		\set f :data '/fashion/mnist_train.sql'
		\i :f
	SQL
	for s in $SCALES; do
		"${PSQL[@]}" <<-SQL
			SET search_path = bench_train_scale;
			CREATE TABLE t$s (pixels bytea NOT NULL, label smallint NOT NULL);
			INSERT INTO t$s SELECT pixels, label FROM generate_series(1, $s), mnist_train;
			VACUUM ANALYZE t$s;
		SQL
	done
}

# train SCALE THREADS MEMORY: a plain SELECT of tSCALE then one epoch of mnist_train on it,
# the backend's RssAnon sampled meanwhile; prints
# "select_ms read_s epoch_s call_ms peak_rss_kB weights_md5"
train() {
	local out=$tmp/out pidfile=$tmp/pid peak=0 kb psql_pid pid='' i
	rm -f "$pidfile"
	"${PSQL[@]}" -At >"$out" 2>&1 <<-SQL &
		SET search_path = bench_train_scale, public;
		SET client_min_messages = notice;
		SET max_parallel_workers_per_gather = 0;
		SET mnist_ml.progress = on;
		SET mnist_ml.train_threads = $2;
		SET mnist_ml.train_memory = '$3';
		\o $pidfile
		SELECT pg_backend_pid();
		\o
		SELECT sum(length(pixels)) + sum(label) FROM t$1 \g /dev/null
		EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) SELECT sum(length(pixels)) + sum(label) FROM t$1;
		\timing on
		SELECT mnist_train('t$1', 'bench_train_scale', epochs => 1, seed => 0) AS model_id \gset
		\timing off
		SELECT 'md5 ' || md5(weights) FROM mnist_models WHERE id = :model_id;
	SQL
	psql_pid=$!
	for i in $(seq 600); do
		[ -s "$pidfile" ] && pid=$(tr -dc 0-9 <"$pidfile") && break
		kill -0 "$psql_pid" 2>/dev/null || break
		sleep 0.05
	done
	while [ -n "$pid" ] && kill -0 "$psql_pid" 2>/dev/null; do
		kb=$(awk '$1 == "RssAnon:" { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
		[ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
		sleep 0.05
	done
	wait "$psql_pid" || { cat "$out" >&2; return 1; }
	awk -v peak="$peak" '
		/"Execution Time"/ { gsub(/[^0-9.]/, "", $3); sel = $3 }
		/NOTICE: +read / { for (i = 1; i < NF; i++) if ($i == "in") rd = $(i + 1) }
		/NOTICE: +epoch / { for (i = 1; i < NF; i++) if ($(i + 1) == "s,") ep = $i }
		/^Time: / { call = $2 }
		/^md5 / { md5 = $2 }
		END { print sel, rd, ep, call, peak, md5 }' "$out"
}

setup
cap_big=2GB
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start ($(date -u +%H:%M) UTC)"
: >"$tmp/all"
for r in $(seq "$ROUNDS"); do
	for s in $SCALES; do
		for t in 1 "$THREADS"; do
			res=$(train "$s" "$t" "$cap_big")
			echo "$r $s $t $cap_big $res" >>"$tmp/all"
		done
	done
	for cap in -1 100MB; do
		res=$(train "$largest" 1 "$cap")
		echo "$r $largest 1 $cap $res" >>"$tmp/all"
	done
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end ($(date -u +%H:%M) UTC)"
echo "every run (round scale threads train_memory select_ms read_s epoch_s call_ms peak_rss_kB md5):"
sed 's/^/  /' "$tmp/all"

# the best of the rounds of each configuration
awk -v mwm="maintenance_work_mem $("${PSQL[@]}" -Atc 'SHOW maintenance_work_mem')" -v big="$cap_big" -v threads="$THREADS" -v largest="$largest" '
function min(a, b) { return a == "" || b < a ? b : a }
function max(a, b) { return a == "" || b > a ? b : a }
{
	k = $2 " " $3 " " $4; rows = $2 * 60000
	sel[k] = min(sel[k], $5); rd[k] = min(rd[k], $6); ep[k] = min(ep[k], $7)
	call[k] = min(call[k], $8); peak[k] = max(peak[k], $9); n[k] = rows
	if ($4 == big && md5[$2] == "") md5[$2] = $10
	else if ($4 == big && md5[$2] != $10) same[$2] = "NO"
	if (!($2 in order)) { order[$2] = ++ns; scale[ns] = $2 }
}
END {
	print ""
	print "read: mnist_train reading its source vs a plain SELECT of the same columns (train_memory 2GB, 1 thread)"
	printf "  %9s %12s %12s %8s\n", "rows", "SELECT r/s", "read r/s", "ratio"
	for (i = 1; i <= ns; i++) { k = scale[i] " 1 " big
		printf "  %9d %12.0f %12.0f %8.2f\n", n[k], n[k] / sel[k] * 1000, n[k] / rd[k], (sel[k] / 1000) / rd[k] }
	k = largest " 1 -1"
	printf "  %9d %12.0f %12.0f %8.2f  (default train_memory: spilled)\n", n[k], n[k] / sel[k] * 1000, n[k] / rd[k], (sel[k] / 1000) / rd[k]
	print ""
	print "epoch rows/s, the whole set in memory (train_memory 2GB), and the ratio to 60,000 rows of the same thread count"
	printf "  %9s %12s %8s %12s %8s %s\n", "rows", "1 thread", "ratio", threads " threads", "ratio", "  same weights 1/" threads " threads"
	base1 = n[scale[1] " 1 " big] / ep[scale[1] " 1 " big]; baset = n[scale[1] " " threads " " big] / ep[scale[1] " " threads " " big]
	for (i = 1; i <= ns; i++) { k1 = scale[i] " 1 " big; kt = scale[i] " " threads " " big
		r1 = n[k1] / ep[k1]; rt = n[kt] / ep[kt]
		printf "  %9d %12.0f %8.2f %12.0f %8.2f   %s\n", n[k1], r1, r1 / base1, rt, rt / baset, same[scale[i]] == "" ? "yes" : "NO" }
	print ""
	printf "memory and time, %d rows, 1 thread: peak RssAnon of the backend, the epoch and the whole call\n", n[largest " 1 " big]
	printf "  %-22s %12s %10s %10s %10s\n", "mnist_ml.train_memory", "peak RssAnon", "epoch r/s", "epoch s", "call s"
	split("-1 100MB " big, caps, " ")
	for (c = 1; c <= 3; c++) { k = largest " 1 " caps[c]
		printf "  %-22s %9.0f MB %10.0f %10.2f %10.2f\n", caps[c] == "-1" ? "-1 (" mwm ")" : caps[c], peak[k] / 1024, n[k] / ep[k], ep[k], call[k] / 1000 }
}' "$tmp/all"

"${PSQL[@]}" -c 'DROP SCHEMA bench_train_scale CASCADE' -c "DELETE FROM mnist_models WHERE name = 'bench_train_scale'"

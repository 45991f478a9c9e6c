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
#   batches  the smallest table trained for as many epochs as make the largest one's rows (20
#            epochs of 60,000 rows: 18,750 batches, as one epoch of 1,200,000): a model goes
#            through the same number of Adam steps, so the rates compare the size of the set
#            alone (a trained model's batches cost more than a fresh one's)
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
mkfifo "$tmp/nap"
exec {nap}<>"$tmp/nap"
largest=$(printf '%s\n' $SCALES | sort -n | tail -1)
smallest=$(printf '%s\n' $SCALES | sort -n | head -1)

setup() {
	"${PSQL[@]}" -v bench="$(dirname "$0")" -v data="$MNIST_DATA" -v clk_tck="$(getconf CLK_TCK)" <<-'SQL'
		\set schema bench_train_scale
		\set f :bench '/setup.psql'
		\i :f
		\set ECHO none
		\set f :data '/fashion/mnist_train.sql'
		\i :f
		-- CPU seconds of this backend so far (utime + stime of /proc/self/stat)
		SELECT format($f$CREATE FUNCTION cpu_seconds() RETURNS float8 LANGUAGE sql AS $$
			SELECT (split_part(s, ' ', 12)::float8 + split_part(s, ' ', 13)::float8) / %s
			FROM split_part(pg_read_file('/proc/self/stat'), ') ', 2) AS s $$$f$, :'clk_tck') \gexec
		-- the plain SELECT of a table's pixels and labels, run reps times after a first run:
		-- the mean wall and CPU seconds of a run
		CREATE FUNCTION plain_select(t regclass, reps int, OUT wall float8, OUT cpu float8)
		LANGUAGE plpgsql AS $$
		DECLARE
			q text := format('SELECT sum(length(pixels)) + sum(label) FROM %s', t);
			t0 timestamptz;
			c0 float8;
		BEGIN
			EXECUTE q;
			c0 := cpu_seconds();
			t0 := clock_timestamp();
			FOR i IN 1..reps LOOP
				EXECUTE q;
			END LOOP;
			wall := extract(epoch FROM clock_timestamp() - t0) / reps;
			cpu := (cpu_seconds() - c0) / reps;
		END $$;
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

# train SCALE THREADS MEMORY [EPOCHS]: a plain SELECT of tSCALE then one epoch of mnist_train on it,
# the backend's RssAnon sampled meanwhile; prints
# "select_s select_cpu_s read_s read_cpu_s epoch_s epoch_cpu_s call_ms peak_rss_kB weights_md5"
train() {
	local out=$tmp/out pidfile=$tmp/pid peak=0 k kb psql_pid pid='' i
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
		SELECT 'select', wall, cpu FROM plain_select('t$1', greatest(1, 20 / $1));
		\timing on
		SELECT mnist_train('t$1', 'bench_train_scale', epochs => ${4:-1}, seed => 0) AS model_id \gset
		\timing off
		SELECT 'md5 ' || md5(weights) FROM mnist_models WHERE id = :model_id;
	SQL
	psql_pid=$!
	# sampling forks nothing (bash builtins; a read with a timeout on a FIFO as the 50 ms nap),
	# not to take CPU from the backend measured
	for i in $(seq 600); do
		[ -s "$pidfile" ] && pid=$(<"$pidfile") && break
		kill -0 "$psql_pid" 2>/dev/null || break
		read -r -t 0.05 -u "$nap" _ || true
	done
	while [ -n "$pid" ] && kill -0 "$psql_pid" 2>/dev/null; do
		while read -r k kb _; do
			[ "$k" = RssAnon: ] && [ "$kb" -gt "$peak" ] && peak=$kb
		done <"/proc/$pid/status" 2>/dev/null || true
		read -r -t 0.05 -u "$nap" _ || true
	done
	wait "$psql_pid" || { cat "$out" >&2; return 1; }
	awk -v peak="$peak" '
		function cpu() { for (i = 1; i < NF; i++) if ($i == "(CPU") return $(i + 1) }
		/^select\|/ { split($0, f, "|"); sel = f[2]; selcpu = f[3] }
		/NOTICE: +read / { for (i = 1; i < NF; i++) if ($i == "in") rd = $(i + 1); rdcpu = cpu() }
		/NOTICE: +epoch / { for (i = 1; i < NF; i++) if ($(i + 1) == "s,") ep += $i; epcpu += cpu() }
		/^Time: / { call = $2 }
		/^md5 / { md5 = $2 }
		END { print sel, selcpu, rd, rdcpu, ep, epcpu, call, peak, md5 }' "$out"
}

# fresh_memory BYTES: seconds to touch BYTES of memory new to the process (huge pages advised,
# as the training set's array is): the kernel's share of reading a source into memory
fresh_memory() {
	/usr/bin/python3 - "$1" <<-'PY'
		import mmap, sys, time
		n = int(sys.argv[1])
		m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
		m.madvise(mmap.MADV_HUGEPAGE)
		t = time.monotonic()
		for off in range(0, n, 4096):
		    m[off] = 1
		print(round(time.monotonic() - t, 3))
	PY
}

setup
cap_big=2GB
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start ($(date -u +%H:%M) UTC)"
: >"$tmp/all"
: >"$tmp/fresh"
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
	res=$(train "$smallest" 1 "$cap_big" $((largest / smallest)))
	echo "$r $smallest 1 epochs$((largest / smallest)) $res" >>"$tmp/all"
	for s in $SCALES; do
		echo "$s $(fresh_memory $((s * 60000 * 784)))" >>"$tmp/fresh"
	done
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end ($(date -u +%H:%M) UTC)"
echo "every run (round scale threads train_memory select_s select_cpu_s read_s read_cpu_s epoch_s epoch_cpu_s call_ms peak_rss_kB md5):"
sed 's/^/  /' "$tmp/all"

# the best of the rounds of each configuration (peak memory: the highest); rates by wall clock
# and by the backend's CPU time (less sensitive to other work on a shared machine)
awk -v mwm="maintenance_work_mem $("${PSQL[@]}" -Atc 'SHOW maintenance_work_mem')" -v big="$cap_big" \
	-v threads="$THREADS" -v largest="$largest" '
function min(a, b) { return a == "" || b < a ? b : a }
function max(a, b) { return a == "" || b > a ? b : a }
{
	k = $2 " " $3 " " $4; n[k] = $2 * 60000 * ($4 ~ /^epochs/ ? substr($4, 7) : 1)
	sel[k] = min(sel[k], $5); selc[k] = min(selc[k], $6); rd[k] = min(rd[k], $7); rdc[k] = min(rdc[k], $8)
	ep[k] = min(ep[k], $9); epc[k] = min(epc[k], $10); call[k] = min(call[k], $11); peak[k] = max(peak[k], $12)
	if ($4 == big && md5[$2] == "") md5[$2] = $13
	else if ($4 == big && md5[$2] != $13) same[$2] = "NO"
	if (!($2 in seen)) { seen[$2] = 1; scale[++ns] = $2 }
}
function readrow(k, note) {
	printf "  %9d %11.0f %11.0f %6.2f %11.0f %11.0f %6.2f  %s\n", n[k], n[k] / sel[k], n[k] / rd[k], sel[k] / rd[k],
		n[k] / selc[k], n[k] / rdc[k], selc[k] / rdc[k], note }
END {
	print ""
	print "read: mnist_train reading its source vs a plain SELECT of the same columns, rows/s (1 thread)"
	printf "  %9s %11s %11s %6s %11s %11s %6s\n", "rows", "SELECT", "read", "ratio", "SELECT cpu", "read cpu", "ratio"
	for (i = 1; i <= ns; i++) readrow(scale[i] " 1 " big, "train_memory " big ": in memory")
	readrow(largest " 1 -1", "train_memory -1: spilled")
	readrow(largest " 1 100MB", "train_memory 100MB: spilled")
	print ""
	print "epoch rows/s, the whole set in memory (train_memory " big "), ratio to the 60,000-row figure of the same threads"
	printf "  %9s %11s %6s %11s %6s %11s %6s %11s %6s  %s\n", "rows", "1 thread", "ratio", "1 thr cpu", "ratio",
		threads " threads", "ratio", threads " thr cpu", "ratio", "same weights"
	k1 = scale[1] " 1 " big; kt = scale[1] " " threads " " big
	b1 = n[k1] / ep[k1]; b1c = n[k1] / epc[k1]; bt = n[kt] / ep[kt]; btc = n[kt] / epc[kt]
	for (i = 1; i <= ns; i++) { k1 = scale[i] " 1 " big; kt = scale[i] " " threads " " big
		printf "  %9d %11.0f %6.2f %11.0f %6.2f %11.0f %6.2f %11.0f %6.2f  %s\n", n[k1], n[k1] / ep[k1], n[k1] / ep[k1] / b1,
			n[k1] / epc[k1], n[k1] / epc[k1] / b1c, n[kt] / ep[kt], n[kt] / ep[kt] / bt, n[kt] / epc[kt], n[kt] / epc[kt] / btc,
			same[scale[i]] == "" ? "yes" : "NO" }
	k = scale[1] " 1 epochs" largest / scale[1]; k1 = scale[1] " 1 " big
	printf "  %9d rows, %d epochs (the batches of the largest table in one epoch), 1 thread: %.0f rows/s, ratio %.2f; by CPU %.0f, ratio %.2f\n",
		n[k1], largest / scale[1], n[k] / ep[k], n[k] / ep[k] / b1, n[k] / epc[k], n[k] / epc[k] / b1c
	kl = largest " 1 " big
	printf "  the largest table against it, 1 thread: ratio %.2f, by CPU %.2f\n", (n[kl] / ep[kl]) / (n[k] / ep[k]), (n[kl] / epc[kl]) / (n[k] / epc[k])
	print ""
	printf "memory and time, %d rows, 1 thread: peak RssAnon of the backend, the epoch and the whole call\n", n[largest " 1 " big]
	printf "  %-34s %12s %11s %9s %9s\n", "mnist_ml.train_memory", "peak RssAnon", "epoch r/s", "epoch s", "call s"
	split("-1 100MB " big, caps, " ")
	for (c = 1; c <= 3; c++) { k = largest " 1 " caps[c]
		printf "  %-34s %9.0f MB %11.0f %9.2f %9.2f\n", caps[c] == "-1" ? "-1 (" mwm ")" : caps[c], peak[k] / 1024,
			n[k] / ep[k], ep[k], call[k] / 1000 }
}' "$tmp/all"
echo
echo "the kernel's share: first touch of memory new to a process, as large as the set's pixels (best of $ROUNDS):"
sort -k1,1n -k2,2g "$tmp/fresh" | awk '!seen[$1]++ { printf "  %9d rows: %6.3f s, %.0f MB/s\n", $1 * 60000, $2, $1 * 60000 * 784 / 1048576 / $2 }'

"${PSQL[@]}" -c 'DROP SCHEMA bench_train_scale CASCADE' -c "DELETE FROM mnist_models WHERE name = 'bench_train_scale'"

#!/bin/bash
# bench/cdc.sh: change data capture speed, end to end (commit -> acknowledged by the broker).
#
# In one run, on a throwaway cluster and the harness's Apache Kafka broker (test/lib.sh
# harness_start; the broker's JVM shares the two cores with both arms):
#   1. throughput: 60,000 Fashion-MNIST rows committed (60 transactions of 1,000) into a
#      captured table => time until the broker acknowledged all 60,000 messages; baseline in
#      the same run: pg_recvlogical + wal2json (format 2) merely decoding the same changes
#      from a slot created just before them.  Target: ours >= wal2json's rows/s (1.0x).
#      Also the worker alone on a 60,000-row backlog (committed while CDC was off).
#   2. latency at a steady 1,000 single-row commits/s (pgbench -R) for DURATION s (default 10):
#      a kcat consumer stamps each message on arrival and subtracts the commit_time header:
#      commit -> acknowledged -> fetched, so an upper bound of commit-to-acknowledged.
#      Target: p99 < 50 ms.  With mnist_ml.cdc_trace_latency on and LogAppendTime topics,
#      each message is split into commit -> WAL seen -> produced -> appended -> arrival, and
#      the slowest 1%'s mean per stage is printed (stages).
#   2b. mnist_ml.cdc_delivery at_least_once vs exactly_once, same run: 60,000 rows => readable
#      by a read_committed consumer (the slot confirmed past them), and the latency run.
#   3. the pipeline our worker replaces, on the same cluster, broker and rows, after ours with
#      our worker off (cdc_tables ''): Debezium's PostgreSQL connector in Kafka Connect
#      standalone mode (bench/debezium/connect.sh: pgoutput, one task, JSON without schemas,
#      fetched once by bench/debezium/fetch) on tables outside our worker's public.mnist_* glob:
#      the same 60,000 rows => time until the topic's high watermarks count them all; the same
#      1,000 commits/s => arrival minus the event's source.ts_us (the commit time, as the
#      commit_time header is ours); again with poll.interval.ms=10 (set through Connect's REST
#      API: same JVM); then ROUNDS (default 3) interleaved rounds of latency runs over the
#      arms (each of our delivery modes in OURS_MODES, Debezium with poll.interval.ms=10 and
#      with its default 500), whose medians compare them at the same moments of a noisy
#      machine (with DEBEZIUM=0, the rounds of our modes alone); and in every round the
#      broker's own floor: Kafka's ProducerPerformance at the same 1,000 records/s of our
#      messages' size through the same broker to the same consumer, no PostgreSQL in the path.
#      Resident memory: VmRSS and RssAnon (/proc/PID/status) of our worker
#      process and of the Connect JVM at rest and at their peak (every 0.1 s) during the
#      60,000 rows; CPU seconds for them: our worker, which decodes in-process, vs the JVM plus
#      the walsender decoding for it.  Printed side by side with ratios (DEBEZIUM=0 skips it).
# Usage: [PG_CONFIG=..] [MNIST_DATA=..] [DURATION=10] [DEBEZIUM=1] [ROUNDS=3]
#        [OURS_MODES="at_least_once ..."] bash bench/cdc.sh
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/test/lib.sh"
source "$root/test/cdc_lib.sh"
source "$root/bench/debezium/connect.sh"
DURATION=${DURATION:-10}
DEBEZIUM=${DEBEZIUM:-1}
ROUNDS=${ROUNDS:-3}

wal2json=postgresql-$(bash "$root/test/pg-major")-wal2json
if ! dpkg -s "$wal2json" >/dev/null 2>&1; then
	apt-get install -y -q "$wal2json" >/dev/null || { echo "cannot install $wal2json" >&2; exit 1; }
fi
if [ ! -f "$("$PG_CONFIG" --pkglibdir)/wal2json.so" ]; then
	echo "bench: wal2json.so is not in $("$PG_CONFIG" --pkglibdir)" >&2
	exit 1
fi
[ -f "$MNIST_DATA/fashion/mnist_train.sql" ] || harness_prepare_data || exit 1
harness_start >/dev/null || exit 1
echo "broker: Apache Kafka $KAFKA_VERSION, one KRaft node, started in $KAFKA_START_MS ms"
if [ -n "$(q "SELECT 1 FROM pg_settings WHERE name = 'output_plugin_libraries'")" ]; then
	# a list setting: unquoted names (a quoted string would be one name)
	q "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, mnist_ml, wal2json"
	q "SELECT pg_reload_conf()" >/dev/null
fi
now_us() { date +%s%6N; }
# bench_until CONDITION LIMIT_S WHAT: evaluates the shell CONDITION every 10 ms until it holds
# (returns 0) or LIMIT_S seconds have passed (says so on stderr, returns 1); the caller times.
bench_until() {
	local start=$SECONDS
	until eval "$1" >/dev/null 2>&1; do
		if [ $((SECONDS - start)) -ge "$2" ]; then
			echo "bench: $3: not after $2 s" >&2
			return 1
		fi
		sleep 0.01
	done
}
# insert_60k TABLE: bench_src's 60,000 rows into TABLE in 60 transactions of 1,000
insert_60k() {
	local i
	for ((i = 0; i < 60; i++)); do
		echo "INSERT INTO $1 (label, pixels) SELECT label, pixels FROM bench_src WHERE id > $((i * 1000)) AND id <= $(((i + 1) * 1000));"
	done | psql -X -q -v ON_ERROR_STOP=1
}

# mem_sample PID FILE: "VmRSS RssAnon" (kB) of PID every 0.1 s until killed or PID exits.
mem_sample() {
	while kill -0 "$1" 2>/dev/null; do
		awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { print r, a }' "/proc/$1/status" 2>/dev/null
		sleep 0.1
	done >"$2"
}

# mem_sample_once PID: "RSS RssAnon" in MiB now.
mem_sample_once() {
	awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { printf "%.1f %.1f\n", r / 1024, a / 1024 }' "/proc/$1/status"
}

# cpu_s PID...: user + system CPU seconds the processes have used so far, summed.
cpu_s() {
	local p
	for p in "$@"; do cat "/proc/$p/stat"; done |
		awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.2f\n", t / hz }'
}

# mem_peak FILE: "RSS RssAnon" peaks in MiB.
mem_peak() {
	awk '$1 > r { r = $1 } $2 > a { a = $2 } END { printf "%.1f %.1f\n", r / 1024, a / 1024 }' "$1"
}

# latency_consumer TOPIC OUT STOP MODE: a kcat consumer from the topic's end, until file STOP
# exists, writing per message to OUT arrival minus commit time and its stages (µs; see
# stages); MODE header: our commit_time (and mnist_trace) headers; debezium: the JSON
# envelope's source.ts_us; created: the record's timestamp on a CreateTime topic (the floor
# arm: Kafka's own producer stamps it when it is sent; ms resolution, so 0-1 ms too high).
latency_consumer() {
	/usr/bin/python3 -c '
import json, os, select, subprocess, sys, time
topic, out, stop, mode, boot = sys.argv[1:6]
p = subprocess.Popen(["kcat", "-b", boot, "-C", "-t", topic, "-o", "end",
                      "-u", "-q", "-X", "fetch.wait.max.ms=1", "-X", "fetch.error.backoff.ms=1",
                      "-f", "%T %h\\n" if mode == "header" else "%T %s\\n"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
fd, buf = p.stdout.fileno(), b""
with open(out, "w") as f:
    while not os.path.exists(stop):
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        data = os.read(fd, 1 << 16)
        arrival = time.time_ns() // 1000
        if not data:
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if not line:
                continue
            # the append time the broker stamped (LogAppendTime topics), ms
            appended, line = line.split(b" ", 1)
            appended = int(appended) * 1000
            if mode == "created":
                # the floor arm: the CreateTime stamped by the Java producer, ms
                commit = seen = produced = appended
            elif mode == "header":
                h = dict(kv.split("=", 1) for kv in line.decode().split(",") if "=" in kv)
                commit = int(h["commit_time"])
                # stages: commit -> WAL seen by the worker -> produced -> appended -> arrival
                seen, produced = (int(v) for v in h["mnist_trace"].split()) if "mnist_trace" in h else (commit, commit)
            else:
                commit = seen = produced = json.loads(line)["source"]["ts_us"]
            f.write("%d %d %d %d %d\n" % (arrival - commit, seen - commit, produced - seen,
                                          appended - produced, arrival - appended))
p.kill()' "$1" "$2" "$3" "$4" "$KAFKA_BOOTSTRAP"
}

# stages FILE: where the time of the slowest 1% of messages went.  FILE's lines (µs, as
# latency_consumer writes them): total, commit -> WAL seen by the worker, seen -> produced,
# produced -> appended by the broker (LogAppendTime, ms resolution), appended -> consumer
# arrival; for Debezium, whose events carry no stage times, the first two stages are 0 and
# "produced" is the commit.  Prints the median of each stage over all messages and its mean
# over the slowest 1%, in ms.
stages() {
	/usr/bin/python3 -c '
import statistics, sys
rows = sorted(tuple(int(v) for v in l.split()) for l in open(sys.argv[1]) if len(l.split()) == 5)
if not rows:
    sys.exit(1)
slow = rows[max(int(len(rows) * 0.99) - 1, 0):]
med = [statistics.median(r[i] for r in rows) / 1000 for i in (1, 2, 3, 4)]
mean = [statistics.mean(r[i] for r in slow) / 1000 for i in (1, 2, 3, 4)]
print("commit -> WAL seen %.1f / %.1f ms, seen -> produced %.2f / %.2f ms, produced -> appended %.1f / %.1f ms,"
      " appended -> arrival %.1f / %.1f ms (median of all / mean of the slowest 1%%, %d messages)"
      % (med[0], mean[0], med[1], mean[1], med[2], mean[2], med[3], mean[3], len(slow)))' "$1"
}

# percentiles FILE: "p50 p99 max" in ms of the µs values in FILE (fails when it is empty).
percentiles() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit 1
		p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]; p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
		printf "%.1f %.1f %.1f\n", p50 / 1000, p99 / 1000, v[NR] / 1000 }'
}

# ---- 1. throughput
# bench_src is unlogged: its one 47 MB load never reaches the WAL, so no decoder holds it in a
# reorder buffer (up to logical_decoding_work_mem, 64 MB, kept in the process's RSS afterwards)
broker_create_topic tf.public.mnist_bench 16 >/dev/null
sed -e '/^CREATE TABLE/d' -e 's/^COPY mnist_train(/COPY bench_src(/' "$MNIST_DATA/fashion/mnist_train.sql" |
	{ q "CREATE UNLOGGED TABLE bench_src (id serial PRIMARY KEY, label smallint, pixels bytea)"; psql -X -q -v ON_ERROR_STOP=1 >/dev/null; }
q "CREATE TABLE mnist_bench (id serial PRIMARY KEY, label smallint, pixels bytea)"
q "VACUUM ANALYZE bench_src"
cdc_wait_state streaming 60 >/dev/null
q "SELECT 'ok' FROM pg_create_logical_replication_slot('bench_wal2json', 'wal2json')" >/dev/null
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")
worker_pid=$(q "SELECT pid FROM mnist_cdc_status")
read -r ours_rss0 ours_anon0 < <(mem_sample_once "$worker_pid")
mem_sample "$worker_pid" "$TEST_TMP/mem.ours" &
sampler=$!
cpu0=$(cpu_s "$worker_pid")

t0=$(now_us)
insert_60k mnist_bench
t_commit=$(now_us)
bench_until "[ \"\$(q 'SELECT acknowledged - $acked0 >= 60000 FROM mnist_cdc_status')\" = t ]" 300 \
	"all 60,000 messages acknowledged" || { q "SELECT * FROM mnist_cdc_status" >&2; exit 1; }
t1=$(now_us)
kill "$sampler"
read -r ours_rss ours_anon < <(mem_peak "$TEST_TMP/mem.ours")
ours_cpu=$(awk -v a="$cpu0" -v b="$(cpu_s "$worker_pid")" 'BEGIN { printf "%.2f", b - a }')
read -r pm_rss pm_anon < <(mem_sample_once "$(head -1 "$PGDATA/postmaster.pid")")
ours=$(awk -v n=60000 -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')
insert_only=$(awk -v n=60000 -v us=$((t_commit - t0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')
tail_ms=$(( (t1 - t_commit) / 1000 ))

# wal2json: decode until the marker row committed after the 60,000 rows
q "CREATE TABLE bench_marker (done int)"
q "INSERT INTO bench_marker VALUES (1)"
w0=$(now_us)
pg_recvlogical -d "$PGDATABASE" --slot bench_wal2json --start -o format-version=2 \
	-o include-transaction=false -f "$TEST_TMP/w2j" 2>/dev/null &
recv=$!
until tail -c 4096 "$TEST_TMP/w2j" 2>/dev/null | grep -q '"table":"bench_marker"'; do
	if [ $(($(now_us) - w0)) -gt 300000000 ]; then
		echo "bench: wal2json did not reach the marker in 300 s" >&2
		break
	fi
	sleep 0.01
done
w1=$(now_us)
kill "$recv" 2>/dev/null
wait "$recv" 2>/dev/null
rows=$(grep -c '"table":"mnist_bench"' "$TEST_TMP/w2j")
q "SELECT pg_drop_replication_slot('bench_wal2json')" >/dev/null
w2j=$(awk -v n="$rows" -v us=$((w1 - w0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')

echo "throughput (60,000 rows of 784 pixels, 60 transactions):"
echo "  mnist_ml CDC, insert start -> all acknowledged: $ours rows/s (inserts alone: $insert_only rows/s; last ack $tail_ms ms after the last commit)"
echo "  pg_recvlogical + wal2json decoding the same changes ($rows rows): $w2j rows/s"
awk -v a="$ours" -v b="$w2j" 'BEGIN { r = a / b; printf "  ratio ours / wal2json: %.2f (target >= 1.0): %s\n", r, (r >= 1.0 ? "met" : "NOT met") }'

# ---- 1b. backlog: the same kind of 60,000 rows decoded and shipped after the fact (the worker
# is off while they are committed, as wal2json above decodes after the fact)
broker_create_topic tf.public.mnist_bench_backlog 16 >/dev/null
q "CREATE TABLE mnist_bench_backlog (id serial PRIMARY KEY, label smallint, pixels bytea)"
cdc_set cdc_tables ''
cdc_wait_state off 30 >/dev/null
insert_60k mnist_bench_backlog
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")
cdc_reset cdc_tables
bench_until "[ \"\$(q 'SELECT state FROM mnist_cdc_status')\" = streaming ]" 60 "the worker streams" || exit 1
b0=$(now_us)
bench_until "[ \"\$(q 'SELECT acknowledged - $acked0 >= 60000 FROM mnist_cdc_status')\" = t ]" 300 \
	"the backlog acknowledged" || exit 1
b1=$(now_us)
backlog=$(awk -v n=60000 -v us=$((b1 - b0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')
echo "  mnist_ml CDC on a 60,000-row backlog, decode -> all acknowledged: $backlog rows/s"
awk -v a="$backlog" -v b="$w2j" 'BEGIN { r = a / b; printf "  ratio backlog / wal2json: %.2f (target >= 1.0): %s\n", r, (r >= 1.0 ? "met" : "NOT met") }'

# ---- 2. latency at 1,000 single-row commits/s
broker_create_topic tf.public.mnist_bench_lat 16 1 message.timestamp.type=LogAppendTime >/dev/null
q "CREATE TABLE mnist_bench_lat (id serial PRIMARY KEY, label smallint, pixels bytea)"
# each message carries the worker's stage times (mnist_trace header) from here on
cdc_set cdc_trace_latency on
cdc_wait_caught_up 60 "caught up" >/dev/null
cat >"$TEST_TMP/lat.sql" <<'SQL'
\set id random(1, 60000)
INSERT INTO mnist_bench_lat (label, pixels) SELECT label, pixels FROM bench_src WHERE id = :id;
SQL
# latency_run TOPIC MODE SQL NAME DRAIN: a kcat consumer on TOPIC (latency_consumer MODE) while
# pgbench runs SQL at 1,000 transactions/s for DURATION s; then the command DRAIN waits until
# everything committed is shipped; the consumer gets 1 s more.  Prints the stages of the
# messages timed (stderr) and "p50 p99 max" (ms).
latency_run() {
	rm -f "$TEST_TMP/latency.stop"
	latency_consumer "$1" "$TEST_TMP/latency.$4" "$TEST_TMP/latency.stop" "$2" &
	consumer=$!
	sleep 3
	pgbench -n -f "$3" -R 1000 -T "$DURATION" -c 4 -j 2 2>/dev/null |
		grep -E 'number of transactions actually processed|latency average|tps' | sed 's/^/  pgbench: /' >&2
	$5
	sleep 1
	touch "$TEST_TMP/latency.stop"
	wait "$consumer"
	echo "  $1 ($4): $(wc -l <"$TEST_TMP/latency.$4") messages timed; $(stages "$TEST_TMP/latency.$4")" >&2
	percentiles "$TEST_TMP/latency.$4"
}
ours_drain() { cdc_wait_caught_up 60 "caught up" >/dev/null; }
# ours_latency NAME: one latency run of our worker: "p50 p99 max" (ms) of the messages timed
ours_latency() { latency_run tf.public.mnist_bench_lat header "$TEST_TMP/lat.sql" "$1" ours_drain; }
read -r ours_p50 ours_p99 ours_max < <(ours_latency single) || { echo "  no message timed"; exit 1; }
ours_load=$(cut -d' ' -f1 /proc/loadavg)
committed=$(q "SELECT count(*) FROM mnist_bench_lat")
echo "latency at 1,000 single-row commits/s for $DURATION s ($committed commits):"
awk -v p50="$ours_p50" -v p99="$ours_p99" -v max="$ours_max" 'BEGIN {
	printf "  commit -> consumer arrival: p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < 50 ms): %s\n",
		p50, p99, max, (p99 < 50 ? "met" : "NOT met") }'
q "SELECT produced, acknowledged, failed FROM mnist_cdc_status" | awk -F'|' '{ printf "status: produced %s, acknowledged %s, failed %s\n", $1, $2, $3 }'

# ---- 2b. delivery modes side by side (mnist_ml.cdc_delivery), same run: at_least_once, then
# exactly_once; each: 60,000 rows in 60 transactions => the slot confirmed past the last commit
# (exactly once: the Kafka transaction committed, so a read_committed consumer can read
# them all), and the latency run above (kcat reads committed: librdkafka's default)
# mode_run MODE: "rows/s p50 p99"
mode_run() {
	local pid t=mnist_bench_$1 lsn m0 m1
	pid=$(q "SELECT pid FROM mnist_cdc_status")
	if [ "$(q "SHOW mnist_ml.cdc_delivery")" != "$1" ]; then
		cdc_set cdc_delivery "$1"
		wait_for "[ \"\$(q 'SELECT state = '\''streaming'\'' AND pid <> $pid FROM mnist_cdc_status')\" = t ]" 120 \
			"worker streams in $1" >/dev/null
	fi
	broker_create_topic "tf.public.$t" 16 >/dev/null
	q "CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"
	cdc_wait_caught_up 60 "caught up" >/dev/null
	m0=$(now_us)
	insert_60k "$t"
	lsn=$(q "SELECT pg_current_wal_lsn()")
	bench_until "[ \"\$(q \"SELECT confirmed_lsn >= '$lsn' FROM mnist_cdc_status\")\" = t ]" 300 \
		"$1: confirmed" || return 1
	m1=$(now_us)
	echo "$(awk -v n=60000 -v us=$((m1 - m0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }') $(ours_latency "$1" | cut -d' ' -f1,2)"
}
read -r alo_rate alo_p50 alo_p99 < <(mode_run at_least_once) || exit 1
read -r eo_rate eo_p50 eo_p99 < <(mode_run exactly_once) || exit 1
cdc_reset cdc_delivery
echo "delivery modes, same run (60,000 rows => readable by a read_committed consumer; latency at 1,000 commits/s):"
echo "  at_least_once: $alo_rate rows/s, p50 $alo_p50 ms, p99 $alo_p99 ms"
echo "  exactly_once:  $eo_rate rows/s, p50 $eo_p50 ms, p99 $eo_p99 ms"
awk -v a="$alo_rate" -v b="$eo_rate" -v p="$alo_p99" -v e="$eo_p99" 'BEGIN {
	c = 1 - b / a; r = e / p
	printf "  exactly_once costs %.0f%% of rows/s (bound 15%%) and %.2fx the p99 (bound 2x): %s\n",
		100 * c, r, (c <= 0.15 && r <= 2 ? "within, exactly_once may be the default" : "NOT within, at_least_once stays the default") }'

# ---- rounds: ROUNDS interleaved latency runs of every arm, so that all arms meet the same
# moments of a noisy machine: each delivery mode of ours (OURS_MODES, the values of
# mnist_ml.cdc_delivery; at_least_once is the default) and, with DEBEZIUM=1, Debezium tuned
# (poll.interval.ms=10) and default (500).  Our worker is off during Debezium's runs; Connect
# stays up, idle, during ours (its walsender still decodes, and skips, our table's changes).
OURS_MODES=${OURS_MODES:-at_least_once exactly_once}
# floor_latency NAME: the broker's own floor, no PostgreSQL in the path: Kafka's
# ProducerPerformance (kafka-tools, a Java producer with acks=all and linger.ms=5, as our
# producer's) sends 1,000 records/s of our messages' mean size to a 16-partition CreateTime
# topic; its first 3 s (the JVM's start and warm-up) are not timed, the next DURATION s are,
# by the same consumer: send -> arrival, "p50 p99 max" (ms)
floor_latency() {
	local producer
	rm -f "$TEST_TMP/latency.stop"
	KAFKA_JVM_TOOL_OPTS="-Xms64m -Xmx256m" kafka_java org.apache.kafka.tools.ProducerPerformance \
		--topic mnist_bench_floor --num-records $((1000 * (DURATION + 4))) --throughput 1000 \
		--record-size "$floor_size" --producer-props bootstrap.servers="$KAFKA_BOOTSTRAP" acks=all linger.ms=5 \
		>"$TEST_TMP/floor.$1" 2>/dev/null &
	producer=$!
	sleep 3
	latency_consumer mnist_bench_floor "$TEST_TMP/latency.$1" "$TEST_TMP/latency.stop" created &
	consumer=$!
	wait "$producer"
	sleep 1
	touch "$TEST_TMP/latency.stop"
	wait "$consumer"
	echo "  floor ($1): $(wc -l <"$TEST_TMP/latency.$1") records timed; ProducerPerformance: $(tail -n 1 "$TEST_TMP/floor.$1")" >&2
	percentiles "$TEST_TMP/latency.$1"
}
broker_create_topic mnist_bench_floor 16 >/dev/null
# our messages' mean value size on the latency topic
floor_size=$(kcat -b "$KAFKA_BOOTSTRAP" -C -t tf.public.mnist_bench_lat -o beginning -c 1000 -e -q -f '%S\n' 2>/dev/null |
	awk '{ s += $1 } END { printf "%d", NR ? s / NR : 3000 }')
# one untimed run first: the first run on a new topic had a p99 of 0.7 s in both runs tried
# (later ones 13-20 ms), as our worker's topics are in use before their timed runs
floor_latency warmup >/dev/null 2>&1
# round_arm ARM NAME: one latency run of ARM (ours:MODE, floor, dbz:POLL_MS): "p50 p99 max" (ms)
round_arm() {
	case $1 in
	ours:*)
		[ "${1#ours:}" = at_least_once ] || cdc_set cdc_delivery "${1#ours:}"
		cdc_reset cdc_tables
		cdc_wait_state streaming 60 >/dev/null
		cdc_wait_caught_up 60 "caught up" >/dev/null
		ours_latency "$2"
		local rc=$?
		[ "${1#ours:}" = at_least_once ] || cdc_reset cdc_delivery
		cdc_set cdc_tables ''
		cdc_wait_state off 30 >/dev/null
		return $rc
		;;
	floor)
		floor_latency "$2"
		;;
	dbz:*)
		# a PUT of an unchanged config does not restart the connector: only on a change (the
		# arm runs in a subshell, so the setting in force is kept in a file)
		if [ "${1#dbz:}" != "$(cat "$TEST_TMP/dbz_poll")" ]; then
			dbz_reconfigure poll.interval.ms="${1#dbz:}" || return 1
			echo "${1#dbz:}" >"$TEST_TMP/dbz_poll"
		fi
		dbz_latency "$2"
		;;
	esac
}
# run_rounds ARM...: the rounds; $TEST_TMP/rounds gets "ARM p50 p99 max load" per run
run_rounds() {
	local r arm p50 p99 max load
	: >"$TEST_TMP/rounds"
	for ((r = 1; r <= ROUNDS; r++)); do
		for arm in "$@"; do
			read -r p50 p99 max < <(round_arm "$arm" "round$r.${arm/:/_}") || { echo "  $arm: nothing timed"; exit 1; }
			load=$(cut -d' ' -f1 /proc/loadavg)
			echo "  round $r, $arm: p50 $p50 ms, p99 $p99 ms, max $max ms (load $load)"
			echo "$arm $p50 $p99 $max $load" >>"$TEST_TMP/rounds"
		done
	done
}
# arm_median ARM COLUMN: median over the rounds of a column (2 p50, 3 p99, 4 max, 5 load)
arm_median() {
	awk -v a="$1" -v c="$2" '$1 == a { print $c }' "$TEST_TMP/rounds" | sort -n |
		awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
# print_rounds ARM...: each arm's median p50, p99, max; p99 ratio to the first arm
print_rounds() {
	local arm ref
	ref=$(arm_median "$1" 3)
	echo "latency, $ROUNDS interleaved rounds of $DURATION s at 1,000 commits/s, median over the rounds:"
	for arm in "$@"; do
		awk -v a="$arm" -v p50="$(arm_median "$arm" 2)" -v p99="$(arm_median "$arm" 3)" -v max="$(arm_median "$arm" 4)" \
			-v load="$(arm_median "$arm" 5)" -v ref="$ref" 'BEGIN {
			printf "  %-22s p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms  (p99 / first arm %.2fx; load %s)\n",
				a, p50, p99, max, p99 / ref, load }'
	done
}
ours_arms=()
for m in $OURS_MODES; do ours_arms+=("ours:$m"); done

if [ "$DEBEZIUM" != 1 ]; then
	run_rounds "${ours_arms[@]}" floor
	print_rounds "${ours_arms[@]}" floor
	exit 0
fi

# ---- 3. the same against Debezium + Kafka Connect (our worker off: each arm has the machine,
# less the broker's JVM, which both share)
for t in dbz_bench dbz_bench_lat; do
	q "CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"
done
broker_create_topic dbz.public.dbz_bench 16 >/dev/null
broker_create_topic dbz.public.dbz_bench_lat 16 1 message.timestamp.type=LogAppendTime >/dev/null
cdc_set cdc_tables ''
cdc_wait_state off 30 >/dev/null
at_exit dbz_stop
c0=$(now_us)
dbz_start dbz_bench dbz_bench_lat || exit 1
dbz_jvm=$(dbz_pid)
# one row through the whole path: the producer has its connections and metadata, as ours had
q "INSERT INTO dbz_bench (label, pixels) SELECT label, pixels FROM bench_src WHERE id = 1"
bench_until '[ "$(topic_total dbz.public.dbz_bench)" = 1 ]' 180 "Debezium's first event in dbz.public.dbz_bench" ||
	{ tail -n 20 "$DBZ_DIR/connect.log" >&2; exit 1; }
echo "Debezium $DEBEZIUM_VERSION on Kafka Connect $CONNECT_VERSION (standalone, pid $dbz_jvm): first event in the topic $((($(now_us) - c0) / 1000)) ms after the JVM's start"

read -r dbz_rss0 dbz_anon0 < <(mem_sample_once "$dbz_jvm")
mem_sample "$dbz_jvm" "$TEST_TMP/mem.dbz" &
sampler=$!
# the JVM and the walsender that decodes for it (pgoutput), as our worker decodes in-process
dbz_walsender=$(q "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'dbz_bench'")
cpu0=$(cpu_s "$dbz_jvm" "$dbz_walsender")
mem_sample "$dbz_walsender" "$TEST_TMP/mem.walsender" &
sampler2=$!
t0=$(now_us)
insert_60k dbz_bench
t_commit=$(now_us)
bench_until '[ "$(topic_total dbz.public.dbz_bench)" -ge 60001 ]' 300 "Debezium's 60,000 events in the topic" || exit 1
t1=$(now_us)
kill "$sampler" "$sampler2"
read -r dbz_rss dbz_anon < <(mem_peak "$TEST_TMP/mem.dbz")
read -r ws_rss ws_anon < <(mem_peak "$TEST_TMP/mem.walsender")
dbz_cpu=$(awk -v a="$cpu0" -v b="$(cpu_s "$dbz_jvm" "$dbz_walsender")" 'BEGIN { printf "%.2f", b - a }')
dbz=$(awk -v n=60000 -v us=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')
echo "  Debezium, insert start -> all 60,000 events in the topic: $dbz rows/s (inserts alone: $(awk -v us=$((t_commit - t0)) 'BEGIN { printf "%.0f", 60000 / (us / 1e6) }') rows/s; last event $(((t1 - t_commit) / 1000)) ms after the last commit)"

sed 's/mnist_bench_lat/dbz_bench_lat/' "$TEST_TMP/lat.sql" >"$TEST_TMP/lat.dbz.sql"
# dbz_drain: waits until the connector has every row committed in dbz_bench_lat in its topic
dbz_drain() {
	local committed
	committed=$(q "SELECT count(*) FROM dbz_bench_lat")
	bench_until "[ \"\$(topic_total dbz.public.dbz_bench_lat)\" -ge $committed ]" 60 \
		"Debezium's latency events all in the topic"
}
# dbz_latency NAME: the latency run against the running connector: "p50 p99 max" (ms)
dbz_latency() { latency_run dbz.public.dbz_bench_lat debezium "$TEST_TMP/lat.dbz.sql" "$1" dbz_drain; }
read -r dbz_p50 dbz_p99 dbz_max < <(dbz_latency defaults) || { echo "  no event timed"; exit 1; }
dbz_load=$(cut -d' ' -f1 /proc/loadavg)
echo "  commit -> consumer arrival: p50 $dbz_p50 ms, p99 $dbz_p99 ms, max $dbz_max ms"
# again with the connector's latency setting turned down (its queue hands a batch to Connect
# when max.batch.size (2048) events are in or poll.interval.ms (default 500) has passed),
# restarted through the REST API in the same, warm, JVM
dbz_reconfigure poll.interval.ms=10 || exit 1
echo 10 >"$TEST_TMP/dbz_poll"
read -r dbzt_p50 dbzt_p99 dbzt_max < <(dbz_latency poll.interval.ms=10) || { echo "  no event timed"; exit 1; }
echo "  commit -> consumer arrival: p50 $dbzt_p50 ms, p99 $dbzt_p99 ms, max $dbzt_max ms"

# ---- 3b. the rounds, Debezium tuned and default interleaved with ours
cdc_set cdc_tables ''
cdc_wait_state off 30 >/dev/null
run_rounds "${ours_arms[@]}" floor dbz:10 dbz:500
dbz_stop
print_rounds "${ours_arms[@]}" floor dbz:10 dbz:500
m1=$(arm_median "${ours_arms[0]}" 2) m2=$(arm_median "${ours_arms[0]}" 3)
m3=$(arm_median dbz:10 2) m4=$(arm_median dbz:10 3)

echo "mnist_ml CDC vs Debezium $DEBEZIUM_VERSION + Kafka Connect $CONNECT_VERSION standalone (same cluster, broker, rows; one after the other):"
awk -v a="$ours" -v b="$dbz" -v a50="$ours_p50" -v b50="$dbz_p50" -v a99="$ours_p99" -v b99="$dbz_p99" \
	-v amax="$ours_max" -v bmax="$dbz_max" -v ar="$ours_rss" -v br="$dbz_rss" -v aa="$ours_anon" -v ba="$dbz_anon" \
	-v t50="$dbzt_p50" -v t99="$dbzt_p99" -v ar0="$ours_rss0" -v br0="$dbz_rss0" -v aa0="$ours_anon0" -v ba0="$dbz_anon0" \
	-v ac="$ours_cpu" -v bc="$dbz_cpu" -v pr="$pm_rss" -v pa="$pm_anon" -v wr="$ws_rss" -v wa="$ws_anon" \
	-v al="$ours_load" -v bl="$dbz_load" -v rounds="$ROUNDS" \
	-v m1="$m1" -v m2="$m2" -v m3="$m3" -v m4="$m4" 'BEGIN {
	f = "  %-50s %10s %10s %8s\n"
	printf f, "", "mnist_ml", "Debezium", "ratio"
	printf f, "rows/s, 60,000 rows, insert start -> in the topic", a, b, sprintf("%.2fx", a / b)
	printf f, "CPU s for them (worker; JVM + its walsender)", ac, bc, sprintf("%.2fx", bc / ac)
	printf f, "latency p50 ms at 1,000 commits/s", a50, b50, sprintf("%.2fx", b50 / a50)
	printf f, "latency p99 ms", a99, b99, sprintf("%.2fx", b99 / a99)
	printf f, "latency max ms", amax, bmax, sprintf("%.2fx", bmax / amax)
	printf f, "load average (1 min) after the latency run", al, bl, ""
	printf f, "  Debezium with poll.interval.ms=10: p50 ms", a50, t50, sprintf("%.2fx", t50 / a50)
	printf f, "  p99 ms", a99, t99, sprintf("%.2fx", t99 / a99)
	printf f, sprintf("interleaved, %d rounds: median p50 ms", rounds), m1, m3, sprintf("%.2fx", m3 / m1)
	printf f, "  median p99 ms", m2, m4, sprintf("%.2fx", m4 / m2)
	printf f, "RSS MiB at rest (worker process vs Connect JVM)", ar0, br0, sprintf("%.1fx", br0 / ar0)
	printf f, "RssAnon MiB at rest", aa0, ba0, sprintf("%.1fx", ba0 / aa0)
	printf f, "peak RSS MiB during the 60,000 rows", ar, br, sprintf("%.1fx", br / ar)
	printf f, "peak RssAnon MiB during the 60,000 rows", aa, ba, sprintf("%.1fx", ba / aa)
	print "  (ratio of rows/s: ours over Debezium; of the others: Debezium over ours)"
	printf "  (the postmaster: RSS %s MiB, RssAnon %s MiB, inherited by every backend, ours included;\n", pr, pa
	printf "   the walsender decoding for Debezium, not counted above: peak RSS %s MiB, RssAnon %s MiB)\n", wr, wa }'

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
#      Target: p99 < 50 ms.
# Usage: [PG_CONFIG=..] [MNIST_DATA=..] [DURATION=10] bash bench/cdc.sh
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/test/lib.sh"
source "$root/test/cdc_lib.sh"
DURATION=${DURATION:-10}

if ! dpkg -s postgresql-15-wal2json >/dev/null 2>&1; then
	apt-get install -y -q postgresql-15-wal2json >/dev/null || { echo "cannot install wal2json" >&2; exit 1; }
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

# ---- 1. throughput
broker_create_topic tf.public.mnist_bench 16 >/dev/null
sed -e '/^CREATE TABLE/d' -e 's/^COPY mnist_train(/COPY bench_src(/' "$MNIST_DATA/fashion/mnist_train.sql" |
	{ q "CREATE TABLE bench_src (id serial PRIMARY KEY, label smallint, pixels bytea)"; psql -X -q -v ON_ERROR_STOP=1 >/dev/null; }
q "CREATE TABLE mnist_bench (id serial PRIMARY KEY, label smallint, pixels bytea)"
q "VACUUM ANALYZE bench_src"
cdc_wait_state streaming 60 >/dev/null
q "SELECT 'ok' FROM pg_create_logical_replication_slot('bench_wal2json', 'wal2json')" >/dev/null
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")

t0=$(now_us)
for ((i = 0; i < 60; i++)); do
	echo "INSERT INTO mnist_bench (label, pixels) SELECT label, pixels FROM bench_src WHERE id > $((i * 1000)) AND id <= $(((i + 1) * 1000));"
done | psql -X -q -v ON_ERROR_STOP=1
t_commit=$(now_us)
until [ "$(q "SELECT acknowledged - $acked0 >= 60000 FROM mnist_cdc_status")" = t ]; do
	if [ $(($(now_us) - t0)) -gt 300000000 ]; then
		echo "bench: not all 60,000 messages acknowledged after 300 s" >&2
		q "SELECT * FROM mnist_cdc_status" >&2
		exit 1
	fi
	sleep 0.01
done
t1=$(now_us)
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
for ((i = 0; i < 60; i++)); do
	echo "INSERT INTO mnist_bench_backlog (label, pixels) SELECT label, pixels FROM bench_src WHERE id > $((i * 1000)) AND id <= $(((i + 1) * 1000));"
done | psql -X -q -v ON_ERROR_STOP=1
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")
cdc_reset cdc_tables
until [ "$(q 'SELECT state FROM mnist_cdc_status')" = streaming ]; do sleep 0.01; done
b0=$(now_us)
until [ "$(q "SELECT acknowledged - $acked0 >= 60000 FROM mnist_cdc_status")" = t ]; do
	if [ $(($(now_us) - b0)) -gt 300000000 ]; then
		echo "bench: backlog not acknowledged after 300 s" >&2
		exit 1
	fi
	sleep 0.01
done
b1=$(now_us)
backlog=$(awk -v n=60000 -v us=$((b1 - b0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')
echo "  mnist_ml CDC on a 60,000-row backlog, decode -> all acknowledged: $backlog rows/s"
awk -v a="$backlog" -v b="$w2j" 'BEGIN { r = a / b; printf "  ratio backlog / wal2json: %.2f (target >= 1.0): %s\n", r, (r >= 1.0 ? "met" : "NOT met") }'

# ---- 2. latency at 1,000 single-row commits/s
broker_create_topic tf.public.mnist_bench_lat 16 >/dev/null
q "CREATE TABLE mnist_bench_lat (id serial PRIMARY KEY, label smallint, pixels bytea)"
cdc_wait_caught_up 60 "caught up" >/dev/null
/usr/bin/python3 -c '
import os, select, subprocess, sys, time
out, stop, boot = sys.argv[1], sys.argv[2], sys.argv[3]
p = subprocess.Popen(["kcat", "-b", boot, "-C", "-t", "tf.public.mnist_bench_lat", "-o", "end",
                      "-u", "-q", "-X", "fetch.wait.max.ms=1", "-X", "fetch.error.backoff.ms=1",
                      "-f", "%h\\n"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
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
            for h in line.decode().split(","):
                if h.startswith("commit_time="):
                    f.write("%d\n" % (arrival - int(h[12:])))
p.kill()' "$TEST_TMP/latency" "$TEST_TMP/latency.stop" "$KAFKA_BOOTSTRAP" &
consumer=$!
sleep 3
cat >"$TEST_TMP/lat.sql" <<'SQL'
\set id random(1, 60000)
INSERT INTO mnist_bench_lat (label, pixels) SELECT label, pixels FROM bench_src WHERE id = :id;
SQL
pgbench -n -f "$TEST_TMP/lat.sql" -R 1000 -T "$DURATION" -c 4 -j 2 2>/dev/null |
	grep -E 'number of transactions actually processed|latency average|tps' | sed 's/^/  pgbench: /'
cdc_wait_caught_up 60 "caught up" >/dev/null
sleep 1
touch "$TEST_TMP/latency.stop"
wait "$consumer"
committed=$(q "SELECT count(*) FROM mnist_bench_lat")
echo "latency at 1,000 single-row commits/s for $DURATION s ($committed commits, $(wc -l <"$TEST_TMP/latency") messages timed):"
sort -n "$TEST_TMP/latency" | awk '{ v[NR] = $1 } END {
	if (NR == 0) { print "  no message timed"; exit 1 }
	p50 = v[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]; p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
	printf "  commit -> consumer arrival: p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < 50 ms): %s\n",
		p50 / 1000, p99 / 1000, v[NR] / 1000, (p99 < 50000 ? "met" : "NOT met") }'
q "SELECT produced, acknowledged, failed FROM mnist_cdc_status" | awk -F'|' '{ printf "status: produced %s, acknowledged %s, failed %s\n", $1, $2, $3 }'

#!/bin/bash
# bench/train_topic.sh: mnist_train_topic over the 60,000 Fashion-MNIST training images produced
# to a 16-partition topic, against mnist_train over the same rows in a table, in the same run
# (same cluster, same Apache Kafka broker, same hyperparameters).  Target: at most 1.3x.
# Then mnist_train_topic without a bound and under mnist_ml.train_memory = 4600kB (10% of the
# rows): time, reading time, peak RssAnon of the backend, Fashion test accuracy.
#   bash bench/train_topic.sh [EPOCHS]     (default 5, the functions' default)
# Uses the test harness (builds, installs, starts a throwaway cluster and a Kafka broker) unless
# one is already reachable (KAFKA_BOOTSTRAP set, as after test/run --keep).
set -u
EPOCHS=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/test/lib.sh"
source "$root/test/integration/topic_lib.sh"
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
	bash "$root/test/install-deps" || exit 1
	harness_build && harness_prepare_data && harness_start >/dev/null || exit 1
fi

T=bench_fashion_train
F=$MNIST_DATA/fashion
echo "== producing 60,000 Fashion-MNIST messages to $T (16 partitions)"
broker_create_topic $T 16 || exit 1
topic_messages $F/train-images-idx3-ubyte $F/train-labels-idx1-ubyte 0 60000 > "$TEST_TMP/$T.txt"
# keyed by label, but spread evenly over the 16 partitions (the default partitioner would put
# each label on one partition)
for p in $(seq 0 15); do
	awk -v p=$p 'NR % 16 == p' "$TEST_TMP/$T.txt" |
		kcat -P -b "$KAFKA_BOOTSTRAP" -t $T -p $p -K: -X linger.ms=100 || exit 1
done
check_topic_intact $T || exit 1
[ "$(topic_total $T)" = 60000 ] || { echo "expected 60000 messages in $T" >&2; exit 1; }

echo "== loading the same rows into a table"
q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_topic CASCADE; CREATE SCHEMA bench_topic"
psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = bench_topic" -f "$F/mnist_train.sql" >/dev/null || exit 1

# run SQL: prints the seconds it took; keeps librdkafka's read time (the NOTICE) in $TEST_TMP/read
run() {
	local start end out
	start=$(date +%s.%N)
	out=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "SET client_min_messages = notice" \
		-c "SET mnist_ml.progress = on" -c "SELECT $1" 2>&1) || { echo "$out" >&2; exit 1; }
	end=$(date +%s.%N)
	echo "$out" | sed -n 's/.*usable) from topic .* in \([0-9.]*\) s.*/\1/p' > "$TEST_TMP/read"
	awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}
min() { printf '%s\n' "$@" | sort -g | head -1; }

echo "== $EPOCHS epochs, hidden 128, batch 64, seed 1; three runs each, interleaved, best kept"
table=() topic=() reads=()
for i in 1 2 3; do
	table+=("$(run "mnist_train('bench_topic.mnist_train', 'bench_table', epochs => $EPOCHS, seed => 1)")")
	topic+=("$(run "mnist_train_topic('$T', 'bench_topic', epochs => $EPOCHS, seed => 1)")")
	reads+=("$(cat "$TEST_TMP/read")")
done
t_table=$(min "${table[@]}")
t_topic=$(min "${topic[@]}")
printf 'mnist_train (table, 60,000 rows):        %6.2f s   runs: %s\n' "$t_table" "${table[*]}"
printf 'mnist_train_topic (topic, 60,000 msgs):  %6.2f s   runs: %s\n' "$t_topic" "${topic[*]}"
printf '  of which reading and decoding the topic:  %s s\n' "$(min "${reads[@]}")"
awk -v a="$t_topic" -v b="$t_table" 'BEGIN { printf "ratio topic / table: %.2fx (target <= 1.3x)\n", a / b }'

echo "== bounded memory: $EPOCHS epochs, seed 1, without a bound and under 4600kB (10% of the rows)"
psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = bench_topic" -f "$F/mnist_test.sql" >/dev/null || exit 1
# capped CAP: mnist_train_topic under mnist_ml.train_memory = CAP, the backend's RssAnon sampled
# every 0.1 s; prints "seconds, reading seconds, peak RssAnon MiB, test accuracy"
capped() {
	local start end job pid= peak=0 a id
	start=$(date +%s.%N)
	psql -X -qAt -v ON_ERROR_STOP=1 -c "SET application_name = bench_capped" \
		-c "SET client_min_messages = notice" -c "SET mnist_ml.progress = on" \
		-c "SET mnist_ml.train_memory = '$1'" \
		-c "SELECT mnist_train_topic('$T', 'bench_capped', epochs => $EPOCHS, seed => 1)" >"$TEST_TMP/capped" 2>&1 &
	job=$!
	while kill -0 $job 2>/dev/null; do
		[ -n "$pid" ] || pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'bench_capped'")
		a=$(awk '/^RssAnon:/ { print $2 }' "/proc/${pid:-0}/status" 2>/dev/null)
		[ "${a:-0}" -gt "$peak" ] && peak=$a
		sleep 0.1
	done
	wait $job || { cat "$TEST_TMP/capped" >&2; exit 1; }
	end=$(date +%s.%N)
	id=$(grep -E '^[0-9]+$' "$TEST_TMP/capped")
	awk -v a="$start" -v b="$end" -v r="$(sed -n 's/.*usable) from topic .* in \([0-9.]*\) s.*/\1/p' "$TEST_TMP/capped")" \
		-v p="$peak" -v acc="$(q "SELECT round(accuracy::numeric, 4) FROM mnist_evaluate('bench_topic.mnist_test', $id::bigint)")" \
		'BEGIN { printf "%6.2f s, reading %s s, peak RssAnon %4.0f MiB, test accuracy %s", b - a, r, p / 1024, acc }'
	grep -q 'spilled to a temporary file' "$TEST_TMP/capped" && printf ' (spilled)'
	echo
}
printf 'mnist_train_topic, no bound:  %s\n' "$(capped -1)"
printf 'mnist_train_topic, 4600kB:    %s\n' "$(capped 4600kB)"
q "DELETE FROM mnist_models WHERE name = 'bench_capped'" >/dev/null
q "SET client_min_messages = warning; DROP SCHEMA bench_topic CASCADE"

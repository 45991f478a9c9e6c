#!/bin/bash
# bench/train_topic.sh: mnist_train_topic over the 60,000 Fashion-MNIST training images produced
# to a 16-partition topic, against mnist_train over the same rows in a table, in the same run
# (same cluster, same Apache Kafka broker, same hyperparameters).  Target: at most 1.3x.
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
q "SET client_min_messages = warning; DROP SCHEMA bench_topic CASCADE"

#!/bin/bash
# bench/online.sh: online learning on the real digits.
#  1. One round on 5,000 new messages with a 1,000-row validation table: consume + train one
#     epoch + validate + store + deploy (target <= 1 s).
#  2. A model trained on 2,000 digits, then fed the other 6,000 in rounds of 1,000: the
#     deployed model's accuracy on 1,000 held-out test digits after each round, against a
#     model trained on all 8,000 at once (target: within 1 point).
#   bash bench/online.sh [EPOCHS_PER_ROUND]     (default 3)
# Uses the test harness (builds, installs, starts a throwaway cluster and a Kafka broker) unless
# one is already reachable (KAFKA_BOOTSTRAP set, as after test/run --keep).
set -u
EPOCHS=${1:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/test/lib.sh"
source "$root/test/integration/topic_lib.sh"
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
	bash "$root/test/install-deps" || exit 1
	harness_build && harness_prepare_data && harness_start >/dev/null || exit 1
fi
D=$MNIST_DATA/digits
S=bench_online
q "SELECT mnist_online_stop(model_name) FROM mnist_online_jobs WHERE model_name LIKE 'bench\_online%'" >/dev/null
q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S"
psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = $S" -f "$D/mnist_train.sql" -f "$D/mnist_test.sql" >/dev/null || exit 1
q "CREATE TABLE $S.val AS SELECT pixels, label FROM $S.mnist_test WHERE id <= 1000;
   CREATE TABLE $S.held AS SELECT pixels, label FROM $S.mnist_test WHERE id > 1000;
   CREATE TABLE $S.first AS SELECT pixels, label FROM $S.mnist_train WHERE id <= 2000"
train() { q "SET mnist_ml.progress = off; SELECT mnist_train($1)"; }
acc() { q "SELECT round(accuracy::numeric, 4) FROM mnist_evaluate('$S.held', '$1')"; }
rounds() { q "SELECT count(*) FROM mnist_online_rounds WHERE model_name = '$1'"; }

echo "== 1. one round on 5,000 new messages, 1,000 validation rows, 1 epoch"
train "'$S.first', 'bench_online_round', epochs => 5, seed => 1" >/dev/null
broker_create_topic bench_online_round 4 || exit 1
q "SELECT mnist_online_start('bench_online_round', 'bench_online_round', '$S.val', every => '1 second',
     min_rows => 5000, max_rows => 5000, epochs => 1)" >/dev/null || exit 1
until [ "$(q "SELECT offsets IS NOT NULL FROM mnist_online_jobs WHERE model_name = 'bench_online_round'")" = t ]; do sleep 0.2; done
topic_messages $D/train-images-idx3-ubyte $D/train-labels-idx1-ubyte 2000 5000 >"$TEST_TMP/round.txt"
topic_produce bench_online_round "$TEST_TMP/round.txt"
produced=$(date +%s.%N)
until [ "$(rounds bench_online_round)" = 1 ]; do sleep 0.05; done
done_at=$(date +%s.%N)
q "SELECT 'round: ' || rows || ' messages, ' || round(seconds::numeric, 3) || ' s train + validate + store + deploy (' ||
	round(accuracy_before::numeric, 4) || ' -> ' || round(accuracy_after::numeric, 4) || ', deployed ' || deployed || ')'
	FROM mnist_online_rounds WHERE model_name = 'bench_online_round'"
echo "from the last message produced to the round's commit (consume included): $(echo "$done_at - $produced" | bc) s"
q "SELECT mnist_online_stop('bench_online_round')" >/dev/null

echo "== 2. 2,000 digits, then 6,000 in rounds of 1,000 ($EPOCHS epochs per round)"
train "'$S.first', 'bench_online', epochs => 5, seed => 1" >/dev/null
train "'$S.mnist_train', 'bench_online_all', epochs => 5, seed => 1" >/dev/null
echo "start (2,000 digits, 5 epochs): $(acc bench_online)"
broker_create_topic bench_online 4 || exit 1
q "SELECT mnist_online_start('bench_online', 'bench_online', '$S.val', every => '1 second',
     min_rows => 1000, max_rows => 1000, epochs => $EPOCHS)" >/dev/null || exit 1
until [ "$(q "SELECT offsets IS NOT NULL FROM mnist_online_jobs WHERE model_name = 'bench_online'")" = t ]; do sleep 0.2; done
for i in 1 2 3 4 5 6; do
	topic_messages $D/train-images-idx3-ubyte $D/train-labels-idx1-ubyte $((1000 + i * 1000)) 1000 >"$TEST_TMP/batch.txt"
	topic_produce bench_online "$TEST_TMP/batch.txt"
	until [ "$(rounds bench_online)" = $i ]; do sleep 0.1; done
	q "SELECT 'round $i: ' || round(seconds::numeric, 3) || ' s, validation ' || round(accuracy_before::numeric, 4) || ' -> ' ||
		round(accuracy_after::numeric, 4) || CASE WHEN deployed THEN ' deployed' ELSE ' not deployed' END
		FROM mnist_online_rounds WHERE model_name = 'bench_online' ORDER BY id DESC LIMIT 1" | tr '\n' ' '
	echo "; held-out accuracy of the deployed model: $(acc bench_online)"
done
q "SELECT mnist_online_stop('bench_online')" >/dev/null
final=$(acc bench_online)
all=$(acc bench_online_all)
echo "online: $final; all 8,000 at once (5 epochs): $all; gap $(echo "($all - $final) * 100" | bc) points"
q "SET client_min_messages = warning; DROP SCHEMA $S CASCADE" >/dev/null

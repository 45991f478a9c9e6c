#!/bin/bash
# mnist_train_topic: trains on every message of a topic (real digits produced with kcat), the
# same seed gives the same weights, the metadata records the offsets read, the model is accurate;
# warm start; a missing topic and an unreachable broker are bounded errors.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

T=topic_train_digits
D=$MNIST_DATA/digits
broker_create_topic $T 16
topic_messages $D/train-images-idx3-ubyte $D/train-labels-idx1-ubyte 0 8000 > "$TEST_TMP/$T.txt"
topic_produce $T "$TEST_TMP/$T.txt"
check_eq "$(topic_count $T)" 8000 "8000 digits produced to $T"
check_topic_intact $T

q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS topic_train CASCADE; CREATE SCHEMA topic_train"
psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = topic_train, public" \
	-f "$D/mnist_test.sql" >/dev/null || fail "load the test digits"

train="SET mnist_ml.progress = off; SELECT mnist_train_topic('$T', 'topic_train_a', epochs => 3, seed => 42)"
id1=$(q "$train")
id2=$(q "${train/topic_train_a/topic_train_b}")
[ -n "$id1" ] && [ -n "$id2" ] && [ "$id1" != "$id2" ] && pass "two models stored ($id1, $id2)" ||
	fail "two models stored ($id1, $id2)"
check_eq "$(q "SELECT count(DISTINCT md5(weights)) FROM mnist_models WHERE id IN ($id1, $id2)")" 1 \
	"same seed, same topic => identical weights"

# the source in the metadata: the topic and the offset range of every partition
src="jsonb_path_query_first(to_jsonb(m), 'strict \$.**.offsets')"
check_eq "$(q "SELECT sum((o->>'to')::bigint - (o->>'from')::bigint) FROM mnist_models m,
	jsonb_array_elements($src) o WHERE m.id = $id1")" 8000 "metadata offsets cover the 8000 messages"
check_eq "$(q "SELECT jsonb_array_length($src) FROM mnist_models m WHERE m.id = $id1")" 16 \
	"metadata has the 16 partitions"
check_eq "$(q "SELECT to_jsonb(m)::text LIKE '%\"topic\": \"$T\"%' FROM mnist_models m WHERE m.id = $id1")" t \
	"metadata names the topic"

acc=$(q "SELECT accuracy >= 0.88 FROM mnist_evaluate('topic_train.mnist_test', 'topic_train_a')")
check_eq "$acc" t "3 epochs from the topic: test accuracy >= 0.88 ($(q "SELECT round(accuracy::numeric, 4) FROM mnist_evaluate('topic_train.mnist_test', 'topic_train_a')"))"

# warm start from the stored model: one more epoch improves or keeps the training loss
out=$(psql_out "SET mnist_ml.progress = off" \
	"SELECT mnist_train_topic('$T', 'topic_train_c', epochs => 1, init_model => 'topic_train_a')")
[[ "$out" =~ ^[0-9]+$ ]] && pass "warm start from a stored model" || fail "warm start: $out"

out=$(psql_out "SET mnist_ml.progress = off" "SELECT mnist_train_topic('topic_train_missing')")
[[ "$out" == *'Kafka topic "topic_train_missing" does not exist'* ]] && pass "missing topic: error" ||
	fail "missing topic: $out"

start=$(date +%s)
out=$(psql_out "SET mnist_ml.kafka_timeout_ms = 2000" \
	"SELECT mnist_train_topic('$T', bootstrap_servers => '127.0.0.1:9')")
[[ "$out" == *'could not reach Kafka broker at "127.0.0.1:9"'* ]] && [ $(($(date +%s) - start)) -le 6 ] &&
	pass "unreachable broker: bounded error naming the servers" || fail "unreachable broker: $out"

q "SET client_min_messages = warning; DROP SCHEMA topic_train CASCADE"

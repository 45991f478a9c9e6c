#!/bin/bash
# Bad messages produced with Kafka's Java console producer: skipped and counted with a WARNING naming the first one,
# or an ERROR under mnist_ml.strict_messages; training and evaluation alike.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

T=topic_bad_msgs
D=$MNIST_DATA/digits
topic_model topic_bad || fail "train the model"
broker_create_topic $T 16
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 0 50 > "$TEST_TMP/$T.good"
topic_produce $T "$TEST_TMP/$T.good"
good=$(head -1 "$TEST_TMP/$T.good" | cut -d: -f2)
{
	echo "1:${good%,*}"				# 783 values
	echo "2:${good},0"				# 785 values
	echo "3:${good/0/x}"			# non-numeric value
	echo "4:${good/0/256}"			# value above 255
	echo "x:$good"					# non-numeric key
	echo "12:$good"					# label outside 0..9
	echo "5:"						# empty value
} > "$TEST_TMP/$T.bad"
kafka_produce $T "$TEST_TMP/$T.bad"
echo "$good" >"$TEST_TMP/$T.nokey"
kafka_produce_unkeyed $T "$TEST_TMP/$T.nokey"	# no key at all
check_eq "$(topic_count $T)" 58 "58 messages produced"

out=$(psql_out "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_bad', 'topic_bad_g1', 2000)")
[[ "$out" == *'WARNING:  skipped 8 bad messages in topic "topic_bad_msgs"'* ]] &&
	pass "evaluate: WARNING counts the 8 bad messages" || fail "evaluate warning: $out"
[[ "$out" =~ The\ first\ is\ at\ partition\ [0-9]+\ offset\ [0-9]+ ]] &&
	pass "the WARNING names the first bad partition/offset" || fail "first bad message: $out"
check_eq "$(echo "$out" | grep -x '[0-9]*')" 50 "evaluate: the 50 good messages count"

out=$(psql_out "SET mnist_ml.progress = off" "SELECT mnist_train_topic('$T', 'topic_bad_t', epochs => 1) > 0")
[[ "$out" == *'skipped 8 bad messages'* && "$out" == *$'\nt'* ]] &&
	pass "train: skips and counts the 8 bad messages" || fail "train: $out"
check_eq "$(q "SELECT jsonb_path_query_first(to_jsonb(m), 'strict \$.**.skipped') FROM mnist_models m
	WHERE name = 'topic_bad_t' ORDER BY id DESC LIMIT 1")" 8 "the model's source records 8 skipped"

out=$(psql_out "SET mnist_ml.strict_messages = on" \
	"SELECT rows FROM mnist_evaluate_topic('$T', 'topic_bad', 'topic_bad_g2', 2000)")
[[ "$out" == *'ERROR:  bad message in topic "topic_bad_msgs" at partition'* ]] &&
	pass "strict_messages: ERROR" || fail "strict evaluate: $out"
# the failed call committed nothing: the group still sees everything
check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_bad', 'topic_bad_g2', 2000)" 2>/dev/null)" 50 \
	"a failed call commits nothing"
out=$(psql_out "SET mnist_ml.strict_messages = on" "SELECT mnist_train_topic('$T', 'topic_bad_t')")
[[ "$out" == *'ERROR:  bad message in topic'* ]] && pass "strict_messages: train ERROR" ||
	fail "strict train: $out"

#!/bin/bash
# A consumer group that rebalances while mnist_predict_topic streams: a second member (kcat)
# joins mid-call, takes half the partitions, and leaves again.  The call reads every message
# once: a partition handed back resumes where the call was (the group has no committed offset
# yet, so librdkafka alone would start it over), and the final commit covers what it read.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

T=topic_rebalance
G=${TOPIC_REBALANCE_GROUP:-topic_rebalance_g}
D=$MNIST_DATA/digits
topic_model topic_rebalance || fail "train the model"
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 0 400 > "$TEST_TMP/$T.a"
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 400 400 > "$TEST_TMP/$T.b"
broker_create_topic $T 4 || fail "create $T"
topic_produce $T "$TEST_TMP/$T.a"

q "DROP TABLE IF EXISTS topic_rebalance_pred"
psql_out "SET client_min_messages = notice" \
	"CREATE TABLE topic_rebalance_pred AS
	 SELECT * FROM mnist_predict_topic('$T', 'topic_rebalance', '$G', 15000)" > "$TEST_TMP/$T.out" &
bg=$!
sleep 5		# the group formed (the mock broker waits 3 s) and the first 400 were read
# the second member: the group rebalances (the mock waits 5 s for members to rejoin)
timeout -s INT 9 kcat -b "$KAFKA_BOOTSTRAP" -G $G -q -u -f '%p\t%o\n' \
	-X session.timeout.ms=6000 -X auto.offset.reset=latest -X enable.auto.commit=false \
	$T > "$TEST_TMP/$T.kcat" 2>/dev/null &
kc=$!
sleep 6		# kcat holds half the partitions now
topic_produce $T "$TEST_TMP/$T.b"
wait $kc	# kcat leaves the group: the call gets every partition back
wait $bg

out=$(cat "$TEST_TMP/$T.out")
[[ "$out" == *'assigned 2 partitions'*'assigned 4 partitions'* ]] &&
	pass "the group rebalanced: the call had 2 partitions, then 4 again" ||
	fail "no rebalance seen: $out"
check_eq "$(q "SELECT count(*) || ' ' || count(DISTINCT (partition, \"offset\")) FROM topic_rebalance_pred")" \
	"800 800" "every message read once across the two rebalances"
check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_rebalance', '$G', 2000)")" 0 \
	"the commit covers all 800: the group has nothing new"
q "DROP TABLE topic_rebalance_pred"

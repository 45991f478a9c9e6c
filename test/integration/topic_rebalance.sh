#!/bin/bash
# A consumer group that rebalances while mnist_predict_topic streams: a second member (another
# call in the same group) joins mid-call, takes half the partitions, and leaves again.  The
# group loses nothing and no call reads a message twice: a call waits through the rebalances,
# a partition handed back resumes where the call was (librdkafka alone would restart it at
# the group's committed offset, here none: from the beginning), and the commits cover what
# was read.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

T=topic_rebalance
G=topic_rebalance_g
D=$MNIST_DATA/digits
topic_model topic_rebalance || fail "train the model"
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 0 400 > "$TEST_TMP/$T.a"
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 400 400 > "$TEST_TMP/$T.b"
broker_create_topic $T 4 || fail "create $T"
topic_produce $T "$TEST_TMP/$T.a"

q "DROP TABLE IF EXISTS topic_rebalance_pred, topic_rebalance_pred2"
psql_out "SET client_min_messages = notice" \
	"CREATE TABLE topic_rebalance_pred AS
	 SELECT * FROM mnist_predict_topic('$T', 'topic_rebalance', '$G', 15000)" > "$TEST_TMP/$T.out" &
bg=$!
# the group formed and the first 400 are read
wait_for "grep -q 'assigned 4 partitions' '$TEST_TMP/$T.out'" 30 "the first call has the 4 partitions"
sleep 1
# a second member: the group rebalances, the second call gets half the partitions, reads its
# share of the next 400 and leaves
psql_out "CREATE TABLE topic_rebalance_pred2 AS
	 SELECT * FROM mnist_predict_topic('$T', 'topic_rebalance', '$G', 4000)" > "$TEST_TMP/$T.out2" &
bg2=$!
wait_for "grep -q 'assigned 2 partitions' '$TEST_TMP/$T.out'" 30 "the first call is down to 2 partitions"
topic_produce $T "$TEST_TMP/$T.b"
wait $bg2	# the second member commits and leaves: the first call gets every partition back
wait $bg

out=$(cat "$TEST_TMP/$T.out")
[[ "$out" == *'assigned 2 partitions'*'assigned 4 partitions'* ]] &&
	pass "the group rebalanced: the call had 2 partitions, then 4 again" ||
	fail "no rebalance seen: $out $(cat "$TEST_TMP/$T.out2")"
check_eq "$(q "SELECT count(*) = count(DISTINCT (partition, \"offset\")) FROM topic_rebalance_pred")" t \
	"the first call read no message twice across the two rebalances"
check_eq "$(q "SELECT count(*) > 0 AND count(*) = count(DISTINCT (partition, \"offset\")) FROM topic_rebalance_pred2")" \
	t "the second call read its partitions, no message twice"
check_eq "$(q "SELECT count(DISTINCT (partition, \"offset\")) FROM
	(SELECT partition, \"offset\" FROM topic_rebalance_pred UNION ALL
	 SELECT partition, \"offset\" FROM topic_rebalance_pred2) AS b")" 800 \
	"the two calls together read all 800 messages: nothing lost in the handovers"
check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_rebalance', '$G', 2000)")" 0 \
	"the commits cover all 800: the group has nothing new"
q "DROP TABLE topic_rebalance_pred, topic_rebalance_pred2"

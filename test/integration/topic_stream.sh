#!/bin/bash
# mnist_evaluate_topic / mnist_predict_topic: a topic that appears after the call started, a
# group resuming where it committed, a new group reading everything, predictions per message.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

T=topic_stream_late
D=$MNIST_DATA/digits
topic_model topic_stream || fail "train the model"
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 0 600 > "$TEST_TMP/$T.a"
topic_messages $D/t10k-images-idx3-ubyte $D/t10k-labels-idx1-ubyte 600 100 > "$TEST_TMP/$T.b"

# the topic does not exist when the evaluation starts; it is created 4 s later, with 4
# partitions, and its messages come in two bursts
broker_watermarks $T >/dev/null 2>&1 && fail "$T exists before the test" || pass "$T does not exist yet"
psql_out "SET client_min_messages = notice" \
	"SELECT rows, accuracy FROM mnist_evaluate_topic('$T', 'topic_stream', 'topic_stream_g1', 5000)" \
	> "$TEST_TMP/$T.eval" &
bg=$!
sleep 4
broker_create_topic $T 4 || fail "create $T"
head -300 "$TEST_TMP/$T.a" > "$TEST_TMP/$T.a1"
tail -300 "$TEST_TMP/$T.a" > "$TEST_TMP/$T.a2"
topic_produce $T "$TEST_TMP/$T.a1"
sleep 2
topic_produce $T "$TEST_TMP/$T.a2"
wait $bg
out=$(cat "$TEST_TMP/$T.eval")
[[ "$out" == *'assigned'*'partition'* ]] && pass "NOTICE when the group assignment arrives" ||
	fail "assignment notice: $out"
rows=$(grep '^[0-9]*|' "$TEST_TMP/$T.eval" | cut -d'|' -f1)
acc=$(grep '^[0-9]*|' "$TEST_TMP/$T.eval" | cut -d'|' -f2)
check_eq "$rows" 600 "evaluation waited for a topic created after it started: 600 rows"
check_eq "$(awk -v a="$acc" 'BEGIN { print (a >= 0.8) ? "t" : "f" }')" t "accuracy $acc >= 0.8"

# the same group again: offsets were committed, so only new messages count
check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_stream', 'topic_stream_g1', 2000)")" 0 \
	"same group, nothing new: 0 rows"
topic_produce $T "$TEST_TMP/$T.b"
check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_stream', 'topic_stream_g1', 2000)")" 100 \
	"same group resumes: only the 100 new messages"

# a new group reads everything; predictions agree with the evaluation and with mnist_predict
check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$T', 'topic_stream', 'topic_stream_g2', 2000)")" 700 \
	"a new group sees all 700 messages"
q "DROP TABLE IF EXISTS topic_stream_pred;
   CREATE TABLE topic_stream_pred AS SELECT * FROM mnist_predict_topic('$T', 'topic_stream', 'topic_stream_g3', 2000)"
check_eq "$(q "SELECT count(*), count(DISTINCT (partition, \"offset\")) FROM topic_stream_pred")" "700|700" \
	"mnist_predict_topic: a row per message"
correct=$(q "SELECT count(*) FILTER (WHERE label = predicted) FROM topic_stream_pred")
evalc=$(q "SELECT round(rows * accuracy) FROM mnist_evaluate_topic('$T', 'topic_stream', 'topic_stream_g4', 2000)")
check_eq "$correct" "$evalc" "predict_topic and evaluate_topic agree on the correct count"
check_eq "$(q "SELECT bool_and(probability > 0 AND probability <= 1) FROM topic_stream_pred")" t \
	"probabilities in (0, 1]"

# the image of each message, read back with kcat, gets the same class from mnist_predict
kcat_dump $T "$TEST_TMP/$T.dump"
q "DROP TABLE IF EXISTS topic_stream_msg; CREATE TABLE topic_stream_msg(partition int, \"offset\" bigint, label smallint, csv text)"
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy topic_stream_msg FROM '$TEST_TMP/$T.dump'"
check_eq "$(q "SELECT count(*) FROM topic_stream_msg m JOIN topic_stream_pred p USING (partition, \"offset\")
	WHERE p.predicted = mnist_predict(mnist_pixels(string_to_array(m.csv, ',')::int[]), 'topic_stream')")" 700 \
	"every streamed prediction equals mnist_predict of the same image"

q "DROP TABLE topic_stream_pred, topic_stream_msg"

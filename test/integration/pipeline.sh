#!/bin/bash
# The reference's story end to end, with assertions: the training table is loaded, change data
# capture ships it to tf.public.mnist_train, a model is trained from that topic, a streaming
# evaluation of tf.public.mnist_test starts before the test rows exist and sees them arrive,
# and "manual" rows classified by the trigger are captured too.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

D=$MNIST_DATA/digits
TRAIN=tf.public.mnist_train
TEST=tf.public.mnist_test
MANUAL=tf.public.mnist_manual

q "DROP TABLE IF EXISTS public.mnist_train, public.mnist_test, public.mnist_manual"
# other scripts may have captured rows into these topics before: count from here
base_train=$(topic_total $TRAIN)
base_test=$(topic_total $TEST)

# 1. the training table; CDC ships every row
psql -X -q -v ON_ERROR_STOP=1 -f "$D/mnist_train.sql" >/dev/null || fail "load mnist_train"
check_eq "$(q "SELECT count(*) FROM mnist_train")" 8000 "mnist_train loaded"
wait_for "[ \$(topic_total $TRAIN) -ge $((base_train + 8000)) ]" 120 "CDC shipped mnist_train to $TRAIN"
check_eq "$(topic_total $TRAIN)" $((base_train + 8000)) "$TRAIN holds the 8000 rows once"
check_topic_intact $TRAIN

# 2. train from the topic
id=$(q "SET mnist_ml.progress = off; SELECT mnist_train_topic('$TRAIN', 'pipeline', epochs => 10, seed => 1)")
check_eq "$(q "SELECT sum((o->>'to')::bigint - (o->>'from')::bigint) FROM mnist_models m,
	jsonb_array_elements(jsonb_path_query_first(to_jsonb(m), 'strict \$.**.offsets')) o
	WHERE m.id = ${id:-0}")" $((base_train + 8000)) "model $id trained on every message of $TRAIN"

# 3. a streaming evaluation waits; the test rows are inserted meanwhile
psql -X -qAt -c "SELECT rows, accuracy FROM mnist_evaluate_topic('$TEST', 'pipeline', 'pipeline_cg', 9000)" \
	> "$TEST_TMP/pipeline.eval" 2>&1 &
bg=$!
sleep 5
kill -0 $bg 2>/dev/null && pass "the evaluation is waiting for messages" || fail "the evaluation ended early"
psql -X -q -v ON_ERROR_STOP=1 -f "$D/mnist_test.sql" >/dev/null || fail "load mnist_test"
wait $bg
res=$(grep -E '^[0-9]+\|' "$TEST_TMP/pipeline.eval")
[ -n "$res" ] || sed 's/^/    eval: /' "$TEST_TMP/pipeline.eval" >&2
check_eq "${res%%|*}" $((base_test + 2000)) "the evaluation saw the 2000 test rows inserted while it waited"
acc=${res#*|}
check_eq "$(awk -v a="$acc" 'BEGIN { print (a >= 0.9) ? "t" : "f" }')" t "streamed accuracy $acc >= 0.9"
[ "$base_test" = 0 ] &&
	check_eq "$(q "SELECT abs(accuracy - ${acc:-0}) < 1e-9 FROM mnist_evaluate('mnist_test', 'pipeline')")" t \
		"the same accuracy as mnist_evaluate over the table"

# 4. manual rows: the trigger classifies them, CDC captures them too
after=$(topic_after $MANUAL)
base_manual=$(topic_total $MANUAL)
q "CREATE TABLE mnist_manual(id serial PRIMARY KEY, label smallint, pixels bytea, predicted smallint);
   CREATE TRIGGER classify BEFORE INSERT OR UPDATE OF pixels ON mnist_manual
	   FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'pipeline');
   INSERT INTO mnist_manual(label, pixels) SELECT label, pixels FROM mnist_test ORDER BY id LIMIT 5;
   INSERT INTO mnist_manual(label, pixels)
	   VALUES (3, mnist_pixels('{$(cat "$(dirname "$0")/../../demo/handwritten3.csv")}'))"
check_eq "$(q "SELECT count(*) FILTER (WHERE predicted = mnist_predict(pixels, 'pipeline')) FROM mnist_manual")" 6 \
	"the trigger's predictions equal mnist_predict"
check_eq "$(q "SELECT predicted FROM mnist_manual WHERE id = 6")" 3 "the reference's handwritten 3 is a 3"
q "SELECT mnist_render(pixels) FROM mnist_manual WHERE id = 6" > "$TEST_TMP/three.txt"
check_eq "$(wc -l < "$TEST_TMP/three.txt")" 28 "mnist_render draws it in 28 lines"
wait_for "[ \$(topic_total $MANUAL) -ge $((base_manual + 6)) ]" 60 "CDC shipped the 6 manual rows to $MANUAL"
check_eq "$(q "SELECT string_agg(label || '>' || predicted, ' ' ORDER BY label, predicted)
	FROM mnist_predict_topic('$MANUAL', 'pipeline', 'pipeline_m', 2000) t, (VALUES $after) a(p, hi)
	WHERE t.partition = a.p AND t.\"offset\" >= a.hi")" \
	"$(q "SELECT string_agg(label || '>' || predicted, ' ' ORDER BY label, predicted) FROM mnist_manual")" \
	"the manual rows streamed from $MANUAL get the trigger's predictions"

q "DROP TABLE mnist_manual"

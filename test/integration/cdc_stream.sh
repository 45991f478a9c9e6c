#!/bin/bash
# cdc_stream: the worker streams 10,000 real digits to Kafka; Kafka's Java consumer finds
# exactly the table's (label, pixels) pairs; headers; rollback, non-captured tables, bad rows,
# updates and deletes; status counters; mnist_cdc_snapshot().
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

t=mnist_cdc_stream
topic=tf.public.$t
other=cdc_stream_other
broker_create_topic "$topic" 16 || fail "create $topic"
broker_create_topic "tf.public.$other" 16 || fail "create tf.public.$other"
q "DROP TABLE IF EXISTS $t, $other"
cdc_wait_state streaming 60
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")

# 10,000 digits, a rolled-back transaction, a non-captured table, bad rows
cdc_load_digits "$t"
q "BEGIN; INSERT INTO $t (label, pixels) SELECT label, pixels FROM $t LIMIT 500; ROLLBACK;"
q "CREATE TABLE $other (id int, label smallint, pixels bytea)"
q "INSERT INTO $other SELECT id, label, pixels FROM $t WHERE id <= 100"
q "INSERT INTO $t (label, pixels) VALUES (3, '\x00'), (NULL, (SELECT pixels FROM $t LIMIT 1)), (11, (SELECT pixels FROM $t LIMIT 1))"
q "DELETE FROM $t WHERE label IS NULL OR label > 9 OR length(pixels) <> 784"
cdc_wait_caught_up 120 "worker confirmed all WAL of the 10,000 rows"

cdc_expected "$t" "$TEST_TMP/stream.expected"
check_eq "$(wc -l <"$TEST_TMP/stream.expected")" 10000 "table holds the 10,000 digits"
cdc_topic_pairs "$topic" "$TEST_TMP/stream.actual"
cdc_compare "$TEST_TMP/stream.expected" "$TEST_TMP/stream.actual" "10,000 digits"
check_eq "$(cut -f3 "$TEST_TMP/stream.actual.dump" | sort -u | tr -d '\n')" "0123456789" \
	"keys are the labels 0..9"
check_eq "$(kafka_dump "tf.public.$other" "$TEST_TMP/other.dump"; wc -l <"$TEST_TMP/other.dump")" 0 \
	"a table outside mnist_ml.cdc_tables sends nothing"
check_eq "$(grep -c "skipped a row of public.$t at " "$HARNESS_PG_LOG")" 3 \
	"3 bad rows: WARNING naming the table and the LSN"

# headers, on every message
cut -f5 "$TEST_TMP/stream.actual.dump" >"$TEST_TMP/stream.headers"
check_eq "$(grep -cE '^table=public\.mnist_cdc_stream,lsn=[0-9A-F]+/[0-9A-F]+,txid=[0-9]+,commit_time=[0-9]{16},op=c,pk=[0-9]+$' "$TEST_TMP/stream.headers")" \
	10000 "every message has table, lsn, txid, commit_time, op and pk headers"
check_eq "$(sed -E 's/.*pk=//' "$TEST_TMP/stream.headers" | sort -n | uniq | wc -l)" 10000 \
	"primary keys in headers are the 10,000 ids"

# updates send the new row; deletes and TRUNCATE send nothing
q "UPDATE $t SET label = 9 - label WHERE id <= 10"
q "DELETE FROM $t WHERE id > 9990"
cdc_wait_caught_up 60 "update and delete confirmed"
kafka_dump "$topic" "$TEST_TMP/stream.after"
check_eq "$(wc -l <"$TEST_TMP/stream.after")" 10010 "10 updates sent 10 messages, deletes none"
check_eq "$(cut -f5 "$TEST_TMP/stream.after" | grep -c ',op=u,')" 10 "updates carry op=u"

# updates of rows whose pixels are stored out of line: logical decoding does not carry an
# unchanged out-of-line value, so they are skipped loudly (WARNING with the fix, counted in
# status) by default, and sent with REPLICA IDENTITY FULL (the old row carries the pixels)
tt=mnist_cdc_toast
broker_create_topic "tf.public.$tt" 16 || fail "create tf.public.$tt"
q "CREATE TABLE $tt (id serial PRIMARY KEY, label smallint, pixels bytea, pad text);
   ALTER TABLE $tt ALTER pixels SET STORAGE EXTERNAL, ALTER pad SET STORAGE PLAIN;
   INSERT INTO $tt (label, pixels, pad) SELECT label, pixels, repeat('x', 1500) FROM $t WHERE id <= 5"
check_eq "$(q "SELECT count(DISTINCT chunk_id) FROM pg_toast.pg_toast_$(q "SELECT '$tt'::regclass::oid")")" 5 \
	"the 5 rows' pixels are stored out of line"
cdc_wait_caught_up 60 "inserts confirmed"
skipped0=$(q "SELECT skipped FROM mnist_cdc_status")
log_size=$(stat -c %s "$HARNESS_PG_LOG")
q "UPDATE $tt SET label = 9 - label"
cdc_wait_caught_up 60 "updates with out-of-line pixels confirmed"
check_eq "$(q "SELECT skipped - $skipped0 FROM mnist_cdc_status")" 5 "status counts the 5 updates it could not send"
check_eq "$(tail -c +$((log_size + 1)) "$HARNESS_PG_LOG" | grep -c "HINT:  .*ALTER TABLE public.$tt REPLICA IDENTITY FULL")" 5 \
	"each skipped update: a WARNING whose hint gives the fix"
q "ALTER TABLE $tt REPLICA IDENTITY FULL; UPDATE $tt SET label = 9 - label"
cdc_wait_caught_up 60 "updates under REPLICA IDENTITY FULL confirmed"
check_eq "$(q "SELECT skipped - $skipped0 FROM mnist_cdc_status")" 5 "nothing skipped under REPLICA IDENTITY FULL"
kafka_dump "tf.public.$tt" "$TEST_TMP/toast.dump"
check_eq "$(grep -c ',op=c,' "$TEST_TMP/toast.dump"):$(grep -c ',op=u,' "$TEST_TMP/toast.dump")" "5:5" \
	"5 inserts and the 5 updates under REPLICA IDENTITY FULL sent"
cdc_expected "$tt" "$TEST_TMP/toast.expected"
awk -F'\t' -v OFS='\t' '$5 ~ /,op=u,/ {print $3, $4}' "$TEST_TMP/toast.dump" | LC_ALL=C sort >"$TEST_TMP/toast.actual"
cdc_compare "$TEST_TMP/toast.expected" "$TEST_TMP/toast.actual" "updates with out-of-line pixels"

# a table whose topic name Kafka refuses (a tab and a newline in its name): its rows are
# skipped loudly, once, and the stream goes on; the WARNING names the table exactly as it is,
# so the worker read the plugin's escaped name back intact (cdc_capture.h: record format)
bad_name=$'mnist_cdc_tab\tX\nY'
skipped0=$(q "SELECT skipped FROM mnist_cdc_status")
log_size=$(stat -c %s "$HARNESS_PG_LOG")
q "CREATE TABLE \"$bad_name\" (id serial PRIMARY KEY, label smallint, pixels bytea);
   INSERT INTO \"$bad_name\" (label, pixels) SELECT label, pixels FROM $t WHERE id <= 3"
q "INSERT INTO $tt (label, pixels, pad) SELECT label, pixels, 'after' FROM $t WHERE id = 6"
cdc_wait_caught_up 60 "rows of a table with an illegal topic name confirmed"
check_eq "$(q "SELECT skipped - $skipped0 FROM mnist_cdc_status")" 3 "its 3 rows are counted as skipped"
log_new=$(tail -c +$((log_size + 1)) "$HARNESS_PG_LOG")
check_eq "$(grep -c 'is not a valid Kafka topic name' <<<"$log_new")" 1 \
	"one WARNING names the table and the topic"
# (the server log indents a message's continuation lines with a tab)
logged_name=${bad_name//$'\n'/$'\n\t'}
want="skipping the rows of public.$logged_name: \"tf.public.$logged_name\" is not a valid Kafka topic name"
check_eq "$([[ $log_new == *"$want"* ]] && echo intact || echo mangled)" intact \
	"the WARNING names the table with its tab and newline, unescaped"
check_eq "$(topic_total "tf.public.$tt")" 11 "the row committed after it streams on"
q "DROP TABLE \"$bad_name\""

# status counters
check_eq "$(q "SELECT acknowledged - $acked0 >= 10010, failed, lag_bytes < 1000000, broker_reachable, slot_name FROM mnist_cdc_status")" \
	"t|0|t|t|mnist_ml_cdc" "status: acknowledged counts the messages, nothing failed, no lag"

# mnist_cdc_snapshot: current rows again, as snapshot reads
check_eq "$(q "SELECT mnist_cdc_snapshot('$t')")" 9990 "mnist_cdc_snapshot sends the 9,990 current rows"
kafka_dump "$topic" "$TEST_TMP/stream.snap"
check_eq "$(wc -l <"$TEST_TMP/stream.snap")" 20000 "topic holds 10,010 + 9,990 messages"
cdc_expected "$t" "$TEST_TMP/snap.expected"
awk -F'\t' -v OFS='\t' '$5 ~ /,op=r,/ {print $3, $4}' "$TEST_TMP/stream.snap" | LC_ALL=C sort >"$TEST_TMP/snap.actual"
cdc_compare "$TEST_TMP/snap.expected" "$TEST_TMP/snap.actual" "mnist_cdc_snapshot rows"
q "CREATE TABLE cdc_stream_nopix (a int)"
out=$(q "SELECT mnist_cdc_snapshot('cdc_stream_nopix')" 2>&1)
case $out in
*"cannot be captured"*) pass "mnist_cdc_snapshot refuses a table without pixels and label" ;;
*) fail "mnist_cdc_snapshot on a table without pixels: $out" ;;
esac

# the output plugin on its own through the replication protocol (pg_recvlogical -P mnist_ml)
slot=cdc_stream_recvlogical
pg_recvlogical -d "$PGDATABASE" --slot $slot --create-slot -P mnist_ml || fail "create $slot"
q "INSERT INTO $t (label, pixels) SELECT label, pixels FROM $t WHERE id <= 5"
timeout 5 pg_recvlogical -d "$PGDATABASE" --slot $slot --start -o tables=public.$t \
	-o include-transaction=on -f "$TEST_TMP/recvlogical.out" 2>/dev/null
pg_recvlogical -d "$PGDATABASE" --slot $slot --drop-slot || fail "drop $slot"
check_eq "$(awk -F'\t' 'NR == 1 { b = $0 ~ /^BEGIN [0-9]+$/ } NR > 1 && NR < 7 && $1 == "public.'$t'" { n++ } END { print b, n, $0 ~ /^COMMIT [0-9]+$/ }' "$TEST_TMP/recvlogical.out")" \
	"1 5 1" "pg_recvlogical -P mnist_ml: BEGIN, 5 rows, COMMIT"
q "SELECT label || E'\t' || (SELECT string_agg(get_byte(pixels, i)::text, ',' ORDER BY i) FROM generate_series(0, 783) i)
	FROM $t WHERE id <= 5 ORDER BY id" >"$TEST_TMP/recvlogical.expected"
check_eq "$(sed -n '2,6p' "$TEST_TMP/recvlogical.out" | cut -f2,3 | md5sum)" "$(md5sum <"$TEST_TMP/recvlogical.expected")" \
	"pg_recvlogical -P mnist_ml: keys and values equal the rows"

# mnist_ml.cdc_trace_latency (developer setting, bench/cdc.sh): messages carry an mnist_trace
# header "SEEN PRODUCED" (µs since the Unix epoch), commit_time <= SEEN <= PRODUCED; a row
# per try, as the worker takes the setting on its next reload
tr=mnist_cdc_trace
broker_create_topic "tf.public.$tr" 4 || fail "create tf.public.$tr"
q "CREATE TABLE $tr (id serial PRIMARY KEY, label smallint, pixels bytea)"
cdc_set cdc_trace_latency on
wait_for "q \"INSERT INTO $tr (label, pixels) SELECT label, pixels FROM $t WHERE id = 1\";
	kafka_dump tf.public.$tr \"\$TEST_TMP/trace.dump\"; grep -q ',mnist_trace=' \"\$TEST_TMP/trace.dump\"" 60 \
	"with cdc_trace_latency on, messages carry an mnist_trace header"
check_eq "$(cut -f5 "$TEST_TMP/trace.dump" | sed -nE 's/.*commit_time=([0-9]{16}),.*mnist_trace=([0-9]{16}) ([0-9]{16})$/\1 \2 \3/p' |
	awk '$1 <= $2 && $2 <= $3 && $3 - $1 < 600000000 { n++ } END { print n + 0 }')" \
	"$(grep -c ',mnist_trace=' "$TEST_TMP/trace.dump")" "mnist_trace: commit_time <= WAL seen <= produced, in µs since the epoch"
cdc_reset cdc_trace_latency

check_topic_intact "$topic"
check_topic_intact "tf.public.$other"
q "DROP TABLE $t, $other, $tt, cdc_stream_nopix, $tr"

#!/bin/bash
# kafka_compression: compression.codec (mnist_ml.kafka_properties) applied by the CDC worker's
# producer, read off the broker's own log segments with Kafka's kafka.tools.DumpLogSegments
# (the codec of every stored batch), and the rows intact (Kafka's Java consumer): gzip, lz4,
# snappy and zstd against Kafka 4.x, with whichever librdkafka the run uses (Debian 12's
# 2.0.2 and 2.14.2 both apply all four).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

rdkafka=$(pkg-config --modversion rdkafka)
at_exit 'cdc_reset kafka_properties >/dev/null'

for codec in gzip lz4 snappy zstd; do
	t=mnist_compress_$codec
	topic=tf.public.$t
	broker_create_topic "$topic" 2 || fail "create $topic"
	q "DROP TABLE IF EXISTS $t"
	cdc_set kafka_properties "compression.codec=$codec" >/dev/null
	wait_for "[ \"\$(q 'SELECT state FROM mnist_cdc_status')\" = streaming ] &&
		q 'SELECT pid FROM mnist_cdc_status' | grep -q ." 60 "$codec: the worker streams with compression.codec=$codec"
	q "CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"
	sed -e '/^CREATE TABLE/d' -e "s/^COPY mnist_test(/COPY $t(/" "$MNIST_DATA/digits/mnist_test.sql" |
		psql -X -q -v ON_ERROR_STOP=1 >/dev/null || fail "load $t"
	cdc_wait_caught_up 120 "$codec: 2,000 digits acknowledged"

	# every batch the broker stored, and its codec
	files=$(ls "$KAFKA_DIR/data/$topic"-*/*.log | paste -sd,)
	kafka_java kafka.tools.DumpLogSegments --files "$files" >"$TEST_TMP/$codec.segments" 2>&1 ||
		fail "$codec: DumpLogSegments"
	codecs=$(grep -oiE 'compresscodec: [a-z0-9]+' "$TEST_TMP/$codec.segments" | awk '{ print tolower($2) }' | sort | uniq -c |
		awk '{ printf "%s%s:%s", sep, $2, $1; sep = " " }')
	batches=$(grep -ciE 'compresscodec: ' "$TEST_TMP/$codec.segments")
	echo "  $codec (librdkafka $rdkafka): $batches batches stored, codecs: $codecs"
	if [ "$batches" -gt 0 ]; then
		check_eq "$codecs" "$codec:$batches" "$codec (librdkafka $rdkafka): every stored batch is $codec"
	else
		fail "$codec: no batch stored"
	fi

	cdc_expected "$t" "$TEST_TMP/$codec.expected"
	cdc_topic_pairs "$topic" "$TEST_TMP/$codec.actual"
	cdc_compare "$TEST_TMP/$codec.expected" "$TEST_TMP/$codec.actual" "$codec: the 2,000 digits"
	q "DROP TABLE $t"
done

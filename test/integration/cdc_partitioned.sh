#!/bin/bash
# cdc_partitioned: a partitioned table is one topic.  With cdc_tables = 'public.mnist_*', the
# rows of every partition of public.mnist_cdc_parted (one partition named to match the glob,
# one not) go to tf.public.mnist_cdc_parted with that name in the table header, none to a
# partition's own topic; mnist_cdc_snapshot of the partitioned table reads all its partitions.
# Checked with Kafka's Java console consumer.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

t=mnist_cdc_parted
q "DROP TABLE IF EXISTS $t"
q "CREATE TABLE $t (id int, label smallint, pixels bytea, PRIMARY KEY (id, label)) PARTITION BY LIST (label);
   CREATE TABLE ${t}_a PARTITION OF $t FOR VALUES IN (0, 1, 2, 3, 4);
   CREATE TABLE cdc_part_b PARTITION OF $t FOR VALUES IN (5, 6, 7, 8, 9)"
at_exit "q 'DROP TABLE IF EXISTS $t' >/dev/null"
q "INSERT INTO $t SELECT i, i, decode(lpad(to_hex(i), 2, '0') || repeat('00', 783), 'hex') FROM generate_series(0, 9) i"
cdc_wait_caught_up 60 "the partitioned table's rows confirmed"
check_eq "$(topic_total tf.public.$t)" 10 "tf.public.$t holds the 10 rows of both partitions"
check_eq "$(topic_total tf.public.${t}_a)" 0 "no topic for a partition matched by its own name"
check_eq "$(topic_total tf.public.cdc_part_b)" 0 "none for the other partition"
kafka_dump tf.public.$t "$TEST_TMP/parted.dump" || fail "read tf.public.$t"
check_eq "$(grep -c "table=public.$t," "$TEST_TMP/parted.dump")" 10 "every message names the partitioned table"
check_eq "$(awk -F'\t' '{print $3}' "$TEST_TMP/parted.dump" | sort | tr '\n' ' ')" "0 1 2 3 4 5 6 7 8 9 " \
	"one message per row, keyed by its label"

check_eq "$(q "SELECT mnist_cdc_snapshot('$t')")" 10 "mnist_cdc_snapshot of the partitioned table sends its 10 rows"
wait_for "[ \"\$(topic_total tf.public.$t)\" = 20 ]" 30 "the snapshot's rows are on the same topic"

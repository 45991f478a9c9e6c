#!/bin/bash
# cdc_exactly_once: with mnist_ml.cdc_delivery = exactly_once, every committed row reaches its
# topic exactly once, as Kafka's Java console consumer reading committed sees it (each
# message's pk header counted), across the worker killed (SIGKILL) in the middle of a Kafka
# transaction, pg_ctl -m immediate, the broker killed (SIGKILL) and restarted, and the broker
# frozen (SIGSTOP) past transaction.timeout.ms; aborted transactions are visible to a reader
# of uncommitted messages only.  Also: the compacted position topic, and a Kafka property
# isolation.level=read_uncommitted refused.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"

src=cdc_eo_src
cdc_staging "$src"
cdc_wait_state streaming 60

# eo_table NAME: a fresh captured table and its 4-partition topic
eo_table() {
	broker_create_topic "tf.public.$1" 4 || fail "create topic tf.public.$1"
	q "DROP TABLE IF EXISTS $1"
	q "CREATE TABLE $1 (id serial PRIMARY KEY, label smallint, pixels bytea)"
}

# eo_check NAME MSG: read committed, every committed row's pk exactly once; prints what a
# reader of uncommitted messages sees (sets $uncommitted, $committed)
eo_check() {
	local t=$1 exp=$TEST_TMP/$1.pks act=$TEST_TMP/$1.committed unc=$TEST_TMP/$1.uncommitted
	local missing extra dups
	q "SELECT id FROM $t" | LC_ALL=C sort >"$exp"
	kafka_dump "tf.public.$t" "$act.dump" read_committed || fail "$2: read committed"
	sed -E 's/.*(\t|,)pk=//' "$act.dump" | LC_ALL=C sort >"$act"
	kafka_dump "tf.public.$t" "$unc" read_uncommitted || fail "$2: read uncommitted"
	missing=$(LC_ALL=C comm -23 "$exp" <(uniq "$act") | wc -l)
	extra=$(LC_ALL=C comm -13 "$exp" <(uniq "$act") | wc -l)
	dups=$(( $(wc -l <"$act") - $(uniq "$act" | wc -l) ))
	committed=$(wc -l <"$act")
	uncommitted=$(wc -l <"$unc")
	echo "  $2: $(wc -l <"$exp") rows committed; read_committed: $committed messages, $missing lost, $dups duplicated, $extra unexpected; read_uncommitted: $uncommitted messages"
	check_eq "$missing|$dups|$extra" "0|0|0" "$2: every committed row exactly once (lost|duplicated|unexpected)"
}

# eo_wait_restart OLDPID: a new worker streams
eo_wait_restart() {
	wait_for "[ \"\$(q 'SELECT state = '\''streaming'\'' AND pid <> $1 FROM mnist_cdc_status' 2>/dev/null)\" = t ]" 120 \
		"a new worker streams"
}

# ---- a user property may not make mnist_ml read uncommitted
cdc_set kafka_properties 'isolation.level=read_uncommitted'
t=mnist_eo_refused
eo_table "$t"
err=$(q "SELECT mnist_cdc_snapshot('$t')" 2>&1 >/dev/null)
check_eq "$(grep -c 'Kafka property "isolation.level" of mnist_ml.kafka_properties cannot be "read_uncommitted"' <<<"$err")" 1 \
	"isolation.level=read_uncommitted refused: $err"
cdc_reset kafka_properties
cdc_wait_state streaming 60

# ---- exactly once: the worker starts again with a transactional producer
pid=$(q "SELECT pid FROM mnist_cdc_status")
cdc_set cdc_delivery exactly_once
eo_wait_restart "$pid"
check_eq "$(kafka_java kafka.admin.ConfigCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --describe \
	--entity-type topics --entity-name tf.mnist_ml.positions 2>/dev/null | grep -c 'cleanup.policy=compact')" 1 \
	"the position topic tf.mnist_ml.positions exists, compacted"

# ---- mnist_cdc_snapshot follows the setting: Kafka transactions of cdc_batch_rows rows
broker_create_topic "tf.public.$src" 1 || fail "create topic tf.public.$src"
cdc_set cdc_batch_rows 3000
check_eq "$(q "SELECT mnist_cdc_snapshot('$src')")" 10000 "mnist_cdc_snapshot sent 10,000 rows"
cdc_reset cdc_batch_rows
check_eq "$(topic_total "tf.public.$src")" 10004 \
	"in 4 Kafka transactions of at most 3,000 rows (10,000 messages and 4 commit markers in the partition)"
kafka_dump "tf.public.$src" "$TEST_TMP/snap.dump" read_committed || fail "read tf.public.$src"
check_eq "$(sed -E 's/.*(\t|,)pk=//' "$TEST_TMP/snap.dump" | sort -u | wc -l)|$(wc -l <"$TEST_TMP/snap.dump")" "10000|10000" \
	"read committed: each of the 10,000 rows once"

# ---- the worker killed (SIGKILL) in the middle of a Kafka transaction: a batch that does not
# close on its own is on the broker, uncommitted, when the worker dies (PostgreSQL restarts
# all its processes, as after any crash of one)
t=mnist_eo_kill
eo_table "$t"
cdc_set cdc_batch_ms 600000
cdc_set cdc_batch_rows 10000000
cdc_wait_caught_up 60 "caught up before the long batch"
before=$(q "SELECT pg_current_wal_lsn()")
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")
cdc_writer "$src" "$t" 50 0.1 &
writer=$!
wait_for "[ \"\$(q 'SELECT acknowledged - $acked0 >= 2000 FROM mnist_cdc_status')\" = t ]" 60 \
	"the broker acknowledged 2,000 messages of the open Kafka transaction"
check_eq "$(q "SELECT confirmed_lsn < '$before'::pg_lsn + 1000000 FROM mnist_cdc_status")" t \
	"nothing of the open Kafka transaction is confirmed to the slot"
pid=$(q "SELECT pid FROM mnist_cdc_status")
kill -KILL "$pid" || fail "kill -KILL the worker"
cdc_reset cdc_batch_ms 2>/dev/null || { wait_for "q 'SELECT 1' >/dev/null 2>&1" 60 "server back"; cdc_reset cdc_batch_ms; }
cdc_reset cdc_batch_rows
wait "$writer"
eo_wait_restart "$pid"
cdc_wait_caught_up 180 "all confirmed after the worker was killed"
check_eq "$(q "SELECT count(*) FROM $t")" 10000 "writer committed 10,000 rows"
eo_check "$t" "worker killed mid-transaction"
check_eq "$([ "$uncommitted" -gt "$committed" ] && echo yes)" yes \
	"the aborted transaction's messages are visible to read_uncommitted only ($uncommitted > $committed)"

# ---- immediate stop (crash) mid-stream: the slot's saved position is older than Kafka's (the
# worker does not save it in between checkpoints), so the new worker starts from Kafka's
skipped_said() { grep -c 'the transactions between are not sent again' "$HARNESS_PG_LOG"; }
said0=$(skipped_said)
t=mnist_eo_crash
eo_table "$t"
cdc_crash_midstream "$src" "$t" 50
check_eq "$(( $(skipped_said) > said0 ))" 1 \
	"the new worker started at the position Kafka committed, past the slot's saved one"
eo_check "$t" "immediate stop"

# ---- broker killed mid-stream, restarted 5 s later on the same data
t=mnist_eo_outage
eo_table "$t"
cdc_writer "$src" "$t" 50 0.1 &
writer=$!
sleep 3
broker_kill || fail "broker_kill"
sleep 5
broker_restart || fail "broker_restart"
wait "$writer"
cdc_wait_caught_up 240 "all confirmed after the broker came back"
eo_check "$t" "broker killed"

# ---- broker frozen (SIGSTOP) past transaction.timeout.ms (5 s here): the transaction open
# then cannot commit; it is aborted and its rows sent again
pid=$(q "SELECT pid FROM mnist_cdc_status")
cdc_set kafka_properties 'transaction.timeout.ms=5000'
eo_wait_restart "$pid"
t=mnist_eo_frozen
eo_table "$t"
cdc_writer "$src" "$t" 50 0.1 &
writer=$!
sleep 3
broker_freeze || fail "broker_freeze"
sleep 12
broker_thaw || fail "broker_thaw"
wait "$writer"
cdc_wait_caught_up 240 "all confirmed after the broker thawed"
eo_check "$t" "broker frozen past transaction.timeout.ms"
check_eq "$([ "$uncommitted" -ge "$committed" ] && echo yes)" yes \
	"read_uncommitted sees every committed message too ($uncommitted >= $committed)"

pid=$(q "SELECT pid FROM mnist_cdc_status")
cdc_reset kafka_properties
cdc_reset cdc_delivery
eo_wait_restart "$pid"
q "DROP TABLE $src, mnist_eo_refused, mnist_eo_kill, mnist_eo_crash, mnist_eo_outage, mnist_eo_frozen"

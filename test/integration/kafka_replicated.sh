#!/bin/bash
# kafka_replicated: a 3-node KRaft cluster on loopback (every node broker and controller), a
# topic with replication factor 3 and min.insync.replicas=2.  While CDC streams 10,000 real
# digits into its one partition, the partition's leader is killed (SIGKILL) and restarted:
#   - every committed row is in the topic (read with Kafka's Java consumer), the worker kept
#     streaming (same process, nothing failed), and a streaming mnist_predict_topic across the
#     leader change read every message exactly once;
#   - then the new leader is killed together with PostgreSQL (pg_ctl -m immediate): the worker
#     resends from its slot, and still nothing is missing, so the slot was never confirmed past
#     what the cluster had acknowledged;
#   - then, with mnist_ml.cdc_delivery = exactly_once, the leader killed and restarted again:
#     read committed, every committed row exactly once.
# The harness's own broker is stopped meanwhile (two cores); test/run restarts it afterwards.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"
source "$(dirname "$0")/topic_lib.sh"

t=mnist_repl
topic=tf.public.$t
src=kafka_repl_src
CL=$HARNESS_DIR/cluster

broker_stop
at_exit 'for n in 1 2 3; do kafka_node_stop "$CL/$n"; done'
at_exit 'q "ALTER SYSTEM RESET mnist_ml.kafka_bootstrap_servers" >/dev/null; q "ALTER SYSTEM RESET mnist_ml.cdc_tables" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null'

# ---- the cluster
port=$(kafka_free_port $((HARNESS_PORT_BASE + 200)))
voters= boot=
for n in 1 2 3; do
	p[n]=$(kafka_free_port "$port")
	c[n]=$(kafka_free_port $((p[n] + 1)))
	port=$((c[n] + 1))
	voters+="${voters:+,}$n@127.0.0.1:${c[n]}"
	boot+="${boot:+,}127.0.0.1:${p[n]}"
done
id=$(kafka_java kafka.tools.StorageTool random-uuid)
for n in 1 2 3; do
	kafka_node_init "$CL/$n"
	{
		cat <<-EOF
			process.roles=broker,controller
			node.id=$n
			listeners=PLAINTEXT://127.0.0.1:${p[n]},CONTROLLER://127.0.0.1:${c[n]}
			advertised.listeners=PLAINTEXT://127.0.0.1:${p[n]}
			controller.listener.names=CONTROLLER
			inter.broker.listener.name=PLAINTEXT
			listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
			controller.quorum.voters=$voters
			log.dirs=$CL/$n/data
			default.replication.factor=3
			min.insync.replicas=2
		EOF
		kafka_node_common_props 3
	} >"$CL/$n/server.properties"
	kafka_node_format "$CL/$n" "$id" || fail "format node $n"
done
start=$SECONDS
for n in 1 2 3; do	# together: a node serves only once the controllers have a quorum
	kafka_node_launch "$CL/$n" "127.0.0.1:${p[n]}" 256 &
	launch[n]=$!
done
for n in 1 2 3; do
	wait "${launch[n]}" || fail "node $n did not start"
done
pass "3-node cluster at $boot started in $((SECONDS - start)) s"
check_eq "$(kcat -b "$boot" -L | grep -c '^  broker [123] at 127.0.0.1')" 3 "kcat sees 3 brokers"

KAFKA_BOOTSTRAP=$boot broker_create_topic "$topic" 1 3 min.insync.replicas=2 || fail "create $topic"
leader() {
	KAFKA_BOOTSTRAP=$boot "$HARNESS_ROOT/test/kafka_admin" "$boot" leader "$topic" 0
}
isr_full() {	# the partition has its 3 replicas in sync again
	[ "$(kcat -b "$boot" -L -t "$topic" | grep -o 'isrs: [0-9,]*' | tr -cd ',' | wc -c)" = 2 ]
}

# ---- CDC to the cluster (acks=all, idempotent: forced by the worker)
cdc_staging "$src"
q "DROP TABLE IF EXISTS $t; CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"
q "ALTER SYSTEM SET mnist_ml.kafka_bootstrap_servers = '$boot'" >/dev/null
q "ALTER SYSTEM SET mnist_ml.cdc_tables = 'public.$t'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
wait_for "[ \"\$(q \"SELECT state = 'streaming' AND broker_reachable FROM mnist_cdc_status\")\" = t ] || { q 'INSERT INTO $t (label, pixels) SELECT label, pixels FROM $src WHERE id = 1' >/dev/null; false; }" 60 \
	"the worker streams to the cluster"
topic_model kafka_repl || fail "train the model"

# ---- 1. the leader killed and restarted while rows stream; a streaming read across it
pid0=$(q "SELECT pid FROM mnist_cdc_status")
failed0=$(q "SELECT failed FROM mnist_cdc_status")
acked0=$(q "SELECT acknowledged FROM mnist_cdc_status")
q "DROP TABLE IF EXISTS kafka_repl_pred"
psql_out "CREATE TABLE kafka_repl_pred AS SELECT * FROM mnist_predict_topic('$topic', 'kafka_repl', 'kafka_repl_g', 12000, '$boot')" \
	>"$TEST_TMP/repl.pred" &
reader=$!
cdc_writer "$src" "$t" 100 0.1 &
writer=$!
sleep 4
l=$(leader)
kafka_node_kill "$CL/$l" || fail "kill node $l"
pass "killed the partition's leader, node $l"
wait_for "[ \"\$(leader)\" != $l ] && [ \"\$(leader)\" -ge 1 ]" 30 "another node leads the partition ($(leader))"
sleep 3
kafka_node_launch "$CL/$l" "127.0.0.1:${p[l]}" 256 || fail "restart node $l"
wait "$writer"
cdc_wait_caught_up 180 "every row acknowledged by the cluster"
check_eq "$(q "SELECT pid = $pid0, state, failed - $failed0, acknowledged - $acked0 >= 10000 FROM mnist_cdc_status")" \
	"t|streaming|0|t" "the worker kept streaming: same process, nothing failed, 10,000 acknowledged"
wait "$reader"
KAFKA_BOOTSTRAP=$boot cdc_topic_pairs "$topic" "$TEST_TMP/repl.actual"
cdc_expected "$t" "$TEST_TMP/repl.expected"
cdc_compare "$TEST_TMP/repl.expected" "$TEST_TMP/repl.actual" "leader killed" dups-allowed
total=$(wc -l <"$TEST_TMP/repl.actual")
check_eq "$(q "SELECT count(*), count(DISTINCT \"offset\") FROM kafka_repl_pred")" "$total|$total" \
	"mnist_predict_topic across the leader change read each of the $total messages once"
[ -s "$TEST_TMP/repl.pred" ] && sed 's/^/    predict_topic: /' "$TEST_TMP/repl.pred"

# ---- 2. the new leader and PostgreSQL killed together mid-stream
wait_for isr_full 60 "the restarted node is back in sync"
q "TRUNCATE $t"
cdc_writer "$src" "$t" 100 0.1 &
writer=$!
sleep 4
l=$(leader)
kafka_node_kill "$CL/$l" || fail "kill node $l"
pg_stop_immediate || fail "pg_ctl -m immediate"
pass "killed the leader, node $l, and PostgreSQL"
sleep 2
pg_start || fail "pg_start"
kafka_node_launch "$CL/$l" "127.0.0.1:${p[l]}" 256 || fail "restart node $l"
wait "$writer"
cdc_wait_state streaming 60
cdc_wait_caught_up 180 "every row acknowledged after both restarts"
KAFKA_BOOTSTRAP=$boot kafka_dump "$topic" "$TEST_TMP/repl2.dump" || fail "read $topic"
tail -n +$((total + 1)) "$TEST_TMP/repl2.dump" | cut -f3,4 | LC_ALL=C sort >"$TEST_TMP/repl2.actual"
cdc_expected "$t" "$TEST_TMP/repl2.expected"
cdc_compare "$TEST_TMP/repl2.expected" "$TEST_TMP/repl2.actual" "leader and PostgreSQL killed" dups-allowed

# ---- 3. exactly once (mnist_ml.cdc_delivery): the leader of the data partition killed and
# restarted mid-stream; read committed, every committed row's pk exactly once
wait_for isr_full 60 "the restarted node is back in sync"
t3=mnist_repl_eo
KAFKA_BOOTSTRAP=$boot broker_create_topic "tf.public.$t3" 1 3 min.insync.replicas=2 || fail "create tf.public.$t3"
q "DROP TABLE IF EXISTS $t3; CREATE TABLE $t3 (id serial PRIMARY KEY, label smallint, pixels bytea)"
q "ALTER SYSTEM SET mnist_ml.cdc_tables = 'public.$t,public.$t3'" >/dev/null
pid=$(q "SELECT pid FROM mnist_cdc_status")
cdc_set cdc_delivery exactly_once
at_exit 'q "ALTER SYSTEM RESET mnist_ml.cdc_delivery" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null'
wait_for "[ \"\$(q 'SELECT state = '\''streaming'\'' AND pid <> $pid FROM mnist_cdc_status')\" = t ]" 120 \
	"the worker streams exactly once to the cluster"
cdc_writer "$src" "$t3" 100 0.1 &
writer=$!
sleep 4
l=$(KAFKA_BOOTSTRAP=$boot "$HARNESS_ROOT/test/kafka_admin" "$boot" leader "tf.public.$t3" 0)
kafka_node_kill "$CL/$l" || fail "kill node $l"
pass "exactly once: killed the partition's leader, node $l"
sleep 3
kafka_node_launch "$CL/$l" "127.0.0.1:${p[l]}" 256 || fail "restart node $l"
wait "$writer"
cdc_wait_caught_up 240 "exactly once: every row committed to the cluster"
KAFKA_BOOTSTRAP=$boot kafka_dump "tf.public.$t3" "$TEST_TMP/repl3.dump" read_committed || fail "read tf.public.$t3"
sed -E 's/.*(\t|,)pk=//' "$TEST_TMP/repl3.dump" | LC_ALL=C sort >"$TEST_TMP/repl3.actual"
q "SELECT id FROM $t3" | LC_ALL=C sort >"$TEST_TMP/repl3.expected"
check_eq "$(LC_ALL=C comm -3 "$TEST_TMP/repl3.expected" "$TEST_TMP/repl3.actual" | wc -l)|$(wc -l <"$TEST_TMP/repl3.actual")" \
	"0|$(wc -l <"$TEST_TMP/repl3.expected")" \
	"exactly once across the leader's death: read committed, every committed row once"
cdc_reset cdc_delivery

q "DROP TABLE $t, $t3, $src, kafka_repl_pred"

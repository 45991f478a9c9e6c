# test/kafka_lib.sh: the harness's Apache Kafka broker, sourced by test/lib.sh.
#
# A real single-node Kafka (KRaft, combined broker and controller) from the jars test/fetch-kafka
# cached, on 127.0.0.1 with free ports, its data and logs under $HARNESS_DIR/kafka, a small heap.
# The broker runs in a session of its own, so it outlives the test script that restarted it;
# its pid is in $KAFKA_DIR/pid.  Topics are never created automatically
# (auto.create.topics.enable=false): tests create each one with broker_create_topic.
#
#   broker_start              first start: config, storage format, start, wait until it serves
#                             metadata; exports KAFKA_BOOTSTRAP KAFKA_DIR KAFKA_LIB KAFKA_VERSION
#   broker_kill               SIGKILL (a crash); broker_restart starts it again on the same data
#   broker_freeze/broker_thaw SIGSTOP / SIGCONT (a broker that hangs, connections stay open)
#   broker_ensure_up          thaws or restarts whatever a test left frozen or dead
#   broker_stop               ends it (the harness's stop)
#   broker_create_topic NAME PARTITIONS [REPLICATION [KEY=VALUE ...]]
#   broker_watermarks TOPIC   "partition:low:high" per partition (error: missing topic)
#   broker_add_partitions TOPIC COUNT   grows TOPIC to COUNT partitions
#   broker_delete_records TOPIC PARTITION OFFSET   moves the partition's log start to OFFSET
#   broker_delete_topic TOPIC deletes TOPIC (waits until the broker no longer knows it)
#   topic_total TOPIC         messages in TOPIC (0 and status 1 when it is missing)
#   kafka_dump TOPIC FILE     every message read by Kafka's own Java console consumer:
#                             "partition<TAB>offset<TAB>key<TAB>value<TAB>headers" lines, headers
#                             as "k=v,k=v" (empty when none); the check of record of CDC tests
#   kafka_produce TOPIC FILE  Kafka's Java console producer, one message per line, key before
#                             the first ':' (kafka_produce_unkeyed: no key)
#   kcat_dump TOPIC FILE      the same lines as kafka_dump but without headers, read with kcat
#                             (librdkafka, like the product: for quick looks only)
#   check_topic_intact TOPIC  passes unless a partition's log lost its start (low watermark > 0)
#   kafka_java CLASS ARGS...  runs one of Kafka's command-line tools
# Tests that run nodes of their own (a replicated cluster, a SASL_SSL listener) use the node
# functions: kafka_node_init DIR, kafka_node_common_props, kafka_node_format DIR CLUSTER_ID,
# kafka_node_launch DIR BOOTSTRAP [HEAP_MB], kafka_node_kill DIR, kafka_node_stop DIR,
# kafka_free_port FROM.  The functions above that take no servers use $KAFKA_BOOTSTRAP: call
# them as KAFKA_BOOTSTRAP=... broker_create_topic ... to reach another cluster.

KAFKA_JVM_TOOL_OPTS="-Xshare:auto -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xms32m -Xmx256m"

# kafka_java CLASS ARGS...: a Kafka tool from the cached jars; its log goes to stderr (WARN).
kafka_java() {
	local cls=$1
	shift
	# shellcheck disable=SC2086
	java $KAFKA_JVM_TOOL_OPTS -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" \
		-cp "$KAFKA_LIB/*" "$cls" "$@"
}

# ---- one Kafka node (a JVM in its own session; DIR holds its config, data, logs and pid)

# kafka_node_init DIR: a node's directories and logging configuration.
kafka_node_init() {
	mkdir -p "$1/data" "$1/logs"
	cat >"$1/log4j2.properties" <<-'EOF'
		status = warn
		appender.file.type = File
		appender.file.name = file
		appender.file.fileName = ${sys:kafka.logs.dir}/server.log
		appender.file.layout.type = PatternLayout
		appender.file.layout.pattern = [%d] %p %m (%c)%n
		rootLogger.level = INFO
		rootLogger.appenderRef.file.ref = file
	EOF
}

# kafka_node_common_props [NODES]: settings every test node of a cluster of NODES (default 1)
# shares, printed for server.properties: the internal topics' replicas (min.insync.replicas of
# 2 from 3 nodes on), timings and threads.
kafka_node_common_props() {
	local rf=${1:-1} isr=1
	[ "$rf" -ge 3 ] && isr=2
	cat <<-EOF
		offsets.topic.replication.factor=$rf
		transaction.state.log.replication.factor=$rf
		transaction.state.log.min.isr=$isr
		share.coordinator.state.topic.replication.factor=$rf
		share.coordinator.state.topic.min.isr=$isr
	EOF
	cat <<-'EOF'
		auto.create.topics.enable=false
		# a group forms as soon as its first member joins (the default waits 3 s)
		group.initial.rebalance.delay.ms=0
		# restarted after SIGKILL, a node registers again once its old session expired (9 s)
		broker.session.timeout.ms=3000
		broker.heartbeat.interval.ms=1000
		# two cores: fewer threads, a small cleaner buffer (the default takes 128 MiB of heap)
		num.network.threads=2
		num.io.threads=2
		background.threads=2
		num.replica.fetchers=1
		log.cleaner.dedupe.buffer.size=2097152
		offsets.topic.num.partitions=4
		transaction.state.log.num.partitions=4
	EOF
}

# kafka_node_format DIR CLUSTER_ID [StorageTool options...]: formats the node's storage.
kafka_node_format() {
	local dir=$1 id=$2
	shift 2
	kafka_java kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" "$@" \
		>"$dir/logs/format.log" 2>&1 || { cat "$dir/logs/format.log" >&2; return 1; }
}

# kafka_node_pid DIR / kafka_node_running DIR
kafka_node_pid() {
	cat "$1/pid" 2>/dev/null
}

kafka_node_running() {
	local pid
	pid=$(kafka_node_pid "$1")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# kafka_serves BOOTSTRAP: a metadata request gets an answer.
kafka_serves() {
	timeout 5 kcat -b "$1" -L -m 2 >/dev/null 2>&1
}

# kafka_node_launch DIR BOOTSTRAP [HEAP_MB]: starts the node and waits (bounded) until BOOTSTRAP
# serves metadata; sets KAFKA_START_MS.
kafka_node_launch() {
	local dir=$1 boot=$2 heap=${3:-512} i t0
	t0=$(date +%s%N)
	rm -f "$dir/pid"
	setsid bash -c 'echo $$ >"$1/pid"; exec java -Xms$3m -Xmx$3m -XX:+UseSerialGC \
		-XX:CICompilerCount=2 -Dlog4j2.configurationFile="$1/log4j2.properties" \
		-Dkafka.logs.dir="$1/logs" -cp "$2/*" kafka.Kafka "$1/server.properties" \
		>>"$1/logs/stdout.log" 2>&1' _ "$dir" "$KAFKA_LIB" "$heap" </dev/null &
	for ((i = 0; i < 900; i++)); do	# up to 90 s
		[ -s "$dir/pid" ] && kafka_serves "$boot" && break
		if [ -s "$dir/pid" ] && ! kafka_node_running "$dir"; then
			echo "harness: the Kafka node in $dir exited; its log ends with:" >&2
			tail -n 20 "$dir/logs/server.log" "$dir/logs/stdout.log" >&2
			return 1
		fi
		sleep 0.1
	done
	if ! kafka_serves "$boot"; then
		echo "harness: the Kafka node in $dir does not serve metadata at $boot after 90 s" >&2
		tail -n 20 "$dir/logs/server.log" >&2
		return 1
	fi
	KAFKA_START_MS=$((($(date +%s%N) - t0) / 1000000))
}

# kafka_node_kill DIR: SIGKILL, and wait until the process is gone.
kafka_node_kill() {
	local pid i
	pid=$(kafka_node_pid "$1")
	[ -n "$pid" ] || return 1
	kill -KILL "$pid" 2>/dev/null || return 1
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# kafka_node_stop DIR: SIGTERM (controlled shutdown), SIGKILL after 15 s.
kafka_node_stop() {
	local pid i
	pid=$(kafka_node_pid "$1")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -CONT "$pid" 2>/dev/null
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
}

# kafka_free_port FROM: the first free TCP port from FROM on.
kafka_free_port() {
	local port=$1
	while ! _port_free "$port"; do port=$((port + 1)); done
	echo "$port"
}

# ---- the harness's broker

broker_running() {
	kafka_node_running "$KAFKA_DIR"
}

_broker_pid() {
	kafka_node_pid "$KAFKA_DIR"
}

_broker_serves() {
	kafka_serves "$KAFKA_BOOTSTRAP"
}

# broker_start: fetch (cached), configure, format and start the harness's broker.
broker_start() {
	local port cport
	KAFKA_LIB=$(bash "$HARNESS_ROOT/test/fetch-kafka") || return 1
	KAFKA_VERSION=$(cat "$KAFKA_LIB/../version")
	KAFKA_DIR=$HARNESS_DIR/kafka
	export KAFKA_LIB KAFKA_VERSION KAFKA_DIR
	kafka_node_init "$KAFKA_DIR"
	cat >"$KAFKA_DIR/tools-log4j2.properties" <<-'EOF'
		status = warn
		appender.err.type = Console
		appender.err.name = err
		appender.err.target = SYSTEM_ERR
		appender.err.layout.type = PatternLayout
		appender.err.layout.pattern = %p %m%n
		rootLogger.level = WARN
		rootLogger.appenderRef.err.ref = err
	EOF

	# two free ports from the base past PostgreSQL's range (the controller's must be fixed)
	port=$(kafka_free_port $((HARNESS_PORT_BASE + 100)))
	cport=$(kafka_free_port $((port + 1)))
	KAFKA_BOOTSTRAP=127.0.0.1:$port
	export KAFKA_BOOTSTRAP
	{
		cat <<-EOF
			# the mnist_ml test harness's broker: one node, broker and KRaft controller
			process.roles=broker,controller
			node.id=1
			listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
			advertised.listeners=PLAINTEXT://127.0.0.1:$port
			controller.listener.names=CONTROLLER
			inter.broker.listener.name=PLAINTEXT
			listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
			controller.quorum.voters=1@127.0.0.1:$cport
			log.dirs=$KAFKA_DIR/data
		EOF
		kafka_node_common_props
	} >"$KAFKA_DIR/server.properties"
	kafka_node_format "$KAFKA_DIR" "$(kafka_java kafka.tools.StorageTool random-uuid)" || return 1
	kafka_node_launch "$KAFKA_DIR" "$KAFKA_BOOTSTRAP" || return 1
	echo "harness: Apache Kafka $KAFKA_VERSION (KRaft, 1 node) at $KAFKA_BOOTSTRAP, pid $(_broker_pid), started in $KAFKA_START_MS ms, topic auto-creation off"
}

# broker_restart: start the broker again on the same data dir and ports (after broker_kill).
broker_restart() {
	if broker_running; then
		echo "harness: broker_restart: the broker is still running" >&2
		return 1
	fi
	kafka_node_launch "$KAFKA_DIR" "$KAFKA_BOOTSTRAP" || return 1
	echo "  (broker restarted in $KAFKA_START_MS ms)"
}

# broker_kill: SIGKILL, and wait until the process is gone.
broker_kill() {
	kafka_node_kill "$KAFKA_DIR"
}

broker_freeze() {
	kill -STOP "$(_broker_pid)"
}

broker_thaw() {
	kill -CONT "$(_broker_pid)"
}

# broker_ensure_up: whatever a test left, the broker runs and serves metadata afterwards.
broker_ensure_up() {
	[ -n "${KAFKA_DIR:-}" ] || return 0
	if broker_running; then
		kill -CONT "$(_broker_pid)" 2>/dev/null
		_broker_serves && return 0
		local i
		for ((i = 0; i < 300; i++)); do _broker_serves && return 0; sleep 0.1; done
		echo "harness: the broker does not serve: restarting it" >&2
		broker_kill
	fi
	broker_restart
}

# broker_stop: SIGTERM (controlled shutdown), SIGKILL after 15 s.
broker_stop() {
	kafka_node_stop "$KAFKA_DIR"
}

# broker_create_topic NAME PARTITIONS [REPLICATION [KEY=VALUE ...]]
broker_create_topic() {
	"$HARNESS_ROOT/test/kafka_admin" "$KAFKA_BOOTSTRAP" create "$@"
}

# broker_watermarks TOPIC: prints "P:LOW:HIGH" per partition, space separated.
broker_watermarks() {
	"$HARNESS_ROOT/test/kafka_admin" "$KAFKA_BOOTSTRAP" watermarks "$1"
}

broker_add_partitions() {
	"$HARNESS_ROOT/test/kafka_admin" "$KAFKA_BOOTSTRAP" partitions "$1" "$2"
}

broker_delete_records() {
	"$HARNESS_ROOT/test/kafka_admin" "$KAFKA_BOOTSTRAP" delete-records "$1" "$2" "$3"
}

broker_delete_topic() {
	"$HARNESS_ROOT/test/kafka_admin" "$KAFKA_BOOTSTRAP" delete-topic "$1"
}

# topic_total TOPIC: messages in TOPIC by its watermarks (0, and status 1, when it is missing).
topic_total() {
	local wm w total=0
	wm=$(broker_watermarks "$1" 2>/dev/null) || { echo 0; return 1; }
	for w in $wm; do
		IFS=: read -r _ lo hi <<<"$w"
		total=$((total + hi - lo))
	done
	echo "$total"
}

# kafka_dump TOPIC FILE [LEVEL]: every message, read with Kafka's Java console consumer until it
# has as many as the watermarks count (so nothing read is missed and nothing waits on a timer).
# With LEVEL (read_committed or read_uncommitted) the read has that isolation level and ends
# once no message came for 10 s: a transactional topic's watermarks also count transaction
# markers and aborted messages (call it when everything was produced).
kafka_dump() {
	local total bound
	: >"$2"
	total=$(topic_total "$1") || return 1
	[ "$total" -gt 0 ] || return 0
	bound=(--max-messages "$total" --timeout-ms 60000)
	[ -n "${3:-}" ] && bound=(--isolation-level "$3" --timeout-ms 10000)
	kafka_java org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BOOTSTRAP" \
		--topic "$1" --from-beginning "${bound[@]}" \
		--consumer-property allow.auto.create.topics=false \
		--property print.partition=true --property print.offset=true --property print.key=true \
		--property print.headers=true --property key.separator=$'\t' \
		--property headers.separator=, 2>"$2.err" |
		awk -F'\t' -v OFS='\t' '{
			sub(/^Partition:/, "", $1); sub(/^Offset:/, "", $2)
			n = split($3 == "NO_HEADERS" ? "" : $3, h, ",")
			$3 = ""
			for (i = 1; i <= n; i++) { sub(/:/, "=", h[i]); $3 = $3 (i > 1 ? "," : "") h[i] }
			print $1, $2, $4, $5, $3 }' >"$2"
	if [ -z "${3:-}" ] && [ "$(wc -l <"$2")" -ne "$total" ]; then
		echo "kafka_dump $1: read $(wc -l <"$2") of $total messages" >&2
		cat "$2.err" >&2
		return 1
	fi
}

# kafka_produce TOPIC FILE: Kafka's Java console producer, "key:value" lines.
kafka_produce() {
	kafka_java org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" \
		--topic "$1" --property parse.key=true --property key.separator=: <"$2"
}

# kafka_produce_unkeyed TOPIC FILE: the same, messages without a key.
kafka_produce_unkeyed() {
	kafka_java org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" \
		--topic "$1" <"$2"
}

# kcat_dump TOPIC FILE: "partition<TAB>offset<TAB>key<TAB>value" lines read with kcat.
kcat_dump() {
	if ! broker_watermarks "$1" >/dev/null; then
		: >"$2"
		return 1
	fi
	timeout 300 kcat -b "$KAFKA_BOOTSTRAP" -C -t "$1" -o beginning -e -q \
		-X allow.auto.create.topics=false -f '%p\t%o\t%k\t%s\n' >"$2"
}

# check_topic_intact TOPIC: pass unless a partition lost messages (low watermark > 0).
check_topic_intact() {
	local wm w p lo hi lost='' total=0
	if ! wm=$(broker_watermarks "$1"); then
		fail "topic $1 intact: could not read its watermarks"
		return 1
	fi
	for w in $wm; do
		IFS=: read -r p lo hi <<<"$w"
		total=$((total + hi))
		[ "$lo" = 0 ] || lost+=" partition $p starts at offset $lo;"
	done
	if [ -n "$lost" ]; then
		fail "topic $1 intact: messages were deleted:$lost"
		return 1
	fi
	pass "topic $1 intact ($total messages)"
}

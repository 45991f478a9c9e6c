# bench/debezium/connect.sh: Debezium's PostgreSQL connector in Kafka Connect standalone mode,
# the JVM pipeline bench/cdc.sh measures our worker against (sourced after test/lib.sh, with a
# harness running).
#
#   dbz_start TABLES...   writes the worker and connector configurations under $TEST_TMP/dbz,
#                         starts Connect (one JVM in its own session, pid in $DBZ_DIR/pid) and
#                         waits (bounded) until the connector streams; the tables must exist, and
#                         their topics dbz.public.TABLE (topic auto-creation is off on the broker)
#   dbz_reconfigure KEY=VALUE...  the connector's settings changed through Connect's REST API
#                         (the connector restarts in the same, warm, JVM); waits until it streams
#   dbz_pid / dbz_stop    the JVM's pid; SIGTERM, SIGKILL after 15 s
#
# Settings, as a user would deploy it: the JVM options of Kafka's connect-standalone.sh
# (-Xms256M -Xmx2G, G1), Connect's default producer (acks=all, linger.ms=5, one request in
# flight), JsonConverter without schemas for keys and values, offsets in a file; the connector:
# pgoutput, one task, a publication of just TABLES (publication.autocreate.mode=filtered) and a
# slot of its own (dbz_bench), snapshot.mode=no_data (changes only, like our worker), every other
# connector setting at its default (bytea as base64, max.batch.size 2048, poll.interval.ms 500).

DBZ_JVM_OPTS=${DBZ_JVM_OPTS:--Xms256M -Xmx2G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}

dbz_pid() {
	cat "$DBZ_DIR/pid" 2>/dev/null
}

dbz_start() {
	local lib t tables=''
	lib=$(bash "$HARNESS_ROOT/bench/debezium/fetch") || return 1
	source "$lib/../versions"
	export DEBEZIUM_VERSION CONNECT_VERSION
	DBZ_DIR=$TEST_TMP/dbz
	mkdir -p "$DBZ_DIR"
	for t in "$@"; do tables+=${tables:+,}public.$t; done
	DBZ_REST=127.0.0.1:$(kafka_free_port $((HARNESS_PORT_BASE + 200)))
	cat >"$DBZ_DIR/worker.properties" <<-EOF
		bootstrap.servers=$KAFKA_BOOTSTRAP
		key.converter=org.apache.kafka.connect.json.JsonConverter
		value.converter=org.apache.kafka.connect.json.JsonConverter
		key.converter.schemas.enable=false
		value.converter.schemas.enable=false
		offset.storage.file.filename=$DBZ_DIR/offsets
		listeners=http://$DBZ_REST
		plugin.discovery=service_load
	EOF
	cat >"$DBZ_DIR/connector.properties" <<-EOF
		name=dbz-bench
		connector.class=io.debezium.connector.postgresql.PostgresConnector
		tasks.max=1
		plugin.name=pgoutput
		database.hostname=127.0.0.1
		database.port=$PGPORT
		database.user=postgres
		database.dbname=$PGDATABASE
		topic.prefix=dbz
		table.include.list=$tables
		slot.name=dbz_bench
		publication.name=dbz_bench
		publication.autocreate.mode=filtered
		snapshot.mode=no_data
	EOF
	cat >"$DBZ_DIR/log4j2.properties" <<-'EOF'
		status = warn
		appender.file.type = File
		appender.file.name = file
		appender.file.fileName = ${sys:dbz.log}
		appender.file.layout.type = PatternLayout
		appender.file.layout.pattern = [%d] %p %m (%c)%n
		rootLogger.level = INFO
		rootLogger.appenderRef.file.ref = file
	EOF
	rm -f "$DBZ_DIR/pid" "$DBZ_DIR/connect.log"
	# shellcheck disable=SC2086
	setsid bash -c 'echo $$ >"$1/pid"; exec java '"$DBZ_JVM_OPTS"' \
		-Dlog4j2.configurationFile="$1/log4j2.properties" -Ddbz.log="$1/connect.log" \
		-cp "$2/*" org.apache.kafka.connect.cli.ConnectStandalone \
		"$1/worker.properties" "$1/connector.properties" >"$1/stdout.log" 2>&1' _ "$DBZ_DIR" "$lib" </dev/null &
	_dbz_wait_streaming 1
}

# _dbz_wait_streaming N: until the log says "Processing messages" N times (bounded, 120 s).
_dbz_wait_streaming() {
	local i
	for ((i = 0; i < 1200; i++)); do
		[ "$(cat "$DBZ_DIR/connect.log" 2>/dev/null | grep -c 'Processing messages')" -ge "$1" ] && return 0
		# the pid file may not be written yet on a loaded machine
		[ -z "$(dbz_pid)" ] || kill -0 "$(dbz_pid)" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench: Debezium did not start streaming; its log ends with:" >&2
	tail -n 20 "$DBZ_DIR/connect.log" "$DBZ_DIR/stdout.log" >&2
	return 1
}

dbz_reconfigure() {
	local n kv
	n=$(grep -c 'Processing messages' "$DBZ_DIR/connect.log")
	for kv in "$@"; do echo "$kv"; done >>"$DBZ_DIR/connector.properties"
	/usr/bin/python3 -c '
import json, sys
conf = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if "=" in l)
print(json.dumps(conf))' "$DBZ_DIR/connector.properties" |
		curl -sS -f -X PUT -H 'Content-Type: application/json' --data-binary @- \
			"http://$DBZ_REST/connectors/dbz-bench/config" >"$DBZ_DIR/reconfigure.out" || return 1
	_dbz_wait_streaming $((n + 1))
}

dbz_stop() {
	local pid i
	pid=$(dbz_pid)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid"
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
}

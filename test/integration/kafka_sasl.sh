#!/bin/bash
# kafka_sasl: a broker that asks for real credentials.  One KRaft node with a SASL_SSL listener
# (SASL/PLAIN and SCRAM-SHA-512 users, TLS with a CA and a broker certificate made here with
# openssl, host name verification on) and a PLAINTEXT listener.  CDC and the topic functions
# work with their credentials in mnist_ml.kafka_properties_file; SCRAM-SHA-512 too with
# librdkafka 2.6.1+ (test/run --rdkafka current), while with an older one (Debian 12's 2.0.2)
# Kafka 4.x refuses its SCRAM proof: a clear ERROR naming authentication; a wrong password is a clear ERROR naming
# authentication and a last_error for the CDC worker, without a crash loop, and fails an online
# learning job with that ERROR; the password appears in
# no log line, message or SHOW; a superuser-named foreign server (the plaintext listener) gets
# none of the configured security properties.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../cdc_lib.sh"
source "$(dirname "$0")/topic_lib.sh"

S=$HARNESS_DIR/sasl
t=mnist_sasl
topic=tf.public.$t
secret=plain-$RANDOM$RANDOM-secret
scram_secret=scram-$RANDOM$RANDOM-secret
wrong=wrong-$RANDOM$RANDOM
at_exit 'kafka_node_stop "$S"'
at_exit "q \"DELETE FROM mnist_online_jobs WHERE model_name = 'kafka_sasl'; DROP TABLE IF EXISTS ${t}_val\" >/dev/null 2>&1"
at_exit 'for k in kafka_bootstrap_servers kafka_properties_file cdc_tables; do q "ALTER SYSTEM RESET mnist_ml.$k" >/dev/null; done; q "SELECT pg_reload_conf()" >/dev/null'

# ---- certificates: a CA, and a broker certificate for 127.0.0.1 and localhost signed by it
kafka_node_init "$S"
(
	cd "$S" || exit 1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
		-subj "/CN=mnist_ml test CA" 2>/dev/null &&
	openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr \
		-subj "/CN=localhost" 2>/dev/null &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext &&
	openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile san.ext -out broker.crt 2>/dev/null &&
	openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8 &&
	cat broker.pk8 broker.crt >broker.pem
) || fail "make the certificates"
chmod 644 "$S/ca.pem"

# ---- the broker
ps=$(kafka_free_port $((HARNESS_PORT_BASE + 300)))
pp=$(kafka_free_port $((ps + 1)))
pc=$(kafka_free_port $((pp + 1)))
{
	cat <<-EOF
		process.roles=broker,controller
		node.id=1
		listeners=SASL_SSL://127.0.0.1:$ps,PLAINTEXT://127.0.0.1:$pp,CONTROLLER://127.0.0.1:$pc
		advertised.listeners=SASL_SSL://127.0.0.1:$ps,PLAINTEXT://127.0.0.1:$pp
		controller.listener.names=CONTROLLER
		inter.broker.listener.name=PLAINTEXT
		listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
		controller.quorum.voters=1@127.0.0.1:$pc
		log.dirs=$S/data
		sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
		listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="$secret";
		listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
		ssl.keystore.type=PEM
		ssl.keystore.location=$S/broker.pem
	EOF
	kafka_node_common_props
} >"$S/server.properties"
chmod 600 "$S/server.properties"	# it holds the broker's user list
kafka_node_format "$S" "$(kafka_java kafka.tools.StorageTool random-uuid)" \
	--add-scram "SCRAM-SHA-512=[name=bob,password=$scram_secret]" || fail "format"
kafka_node_launch "$S" "127.0.0.1:$pp" 384 || fail "start the SASL_SSL broker"
plain=127.0.0.1:$pp
KAFKA_BOOTSTRAP=$plain broker_create_topic "$topic" 16 || fail "create $topic"

# credentials in a file only the server's user reads
props() {	# props FILE PASSWORD [MECHANISM USER]
	cat >"$1" <<-EOF
		# librdkafka properties of the test's SASL_SSL broker
		security.protocol = SASL_SSL
		sasl.mechanisms = ${3:-PLAIN}
		sasl.username = ${4:-alice}
		sasl.password = $2
		ssl.ca.location = $S/ca.pem
	EOF
	chown postgres: "$1" 2>/dev/null
	chmod 600 "$1"
}
props "$S/good.properties" "$secret"
props "$S/wrong.properties" "$wrong"
props "$S/scram.properties" "$scram_secret" SCRAM-SHA-512 bob

# ---- CDC over SASL_SSL
q "DROP TABLE IF EXISTS $t; CREATE TABLE $t (id serial PRIMARY KEY, label smallint, pixels bytea)"
q "ALTER SYSTEM SET mnist_ml.kafka_bootstrap_servers = '127.0.0.1:$ps'" >/dev/null
q "ALTER SYSTEM SET mnist_ml.kafka_properties_file = '$S/good.properties'" >/dev/null
q "ALTER SYSTEM SET mnist_ml.cdc_tables = 'public.$t'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
cdc_wait_state streaming 60
sed -e '/^CREATE TABLE/d' -e "s/^COPY mnist_test(/COPY $t(/" "$MNIST_DATA/digits/mnist_test.sql" |
	psql -X -q -v ON_ERROR_STOP=1 >/dev/null || fail "load $t"
cdc_wait_caught_up 120 "2,000 digits acknowledged by the SASL_SSL listener"
check_eq "$(q 'SELECT broker_reachable, failed FROM mnist_cdc_status')" "t|0" "status: reachable, nothing failed"
KAFKA_BOOTSTRAP=$plain cdc_topic_pairs "$topic" "$TEST_TMP/sasl.actual"
cdc_expected "$t" "$TEST_TMP/sasl.expected"
cdc_compare "$TEST_TMP/sasl.expected" "$TEST_TMP/sasl.actual" "CDC over SASL_SSL"

# ---- the topic functions over SASL_SSL, and a foreign server without the credentials
topic_model kafka_sasl || fail "train the model"
check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$topic', 'kafka_sasl', 'kafka_sasl_g1', 2000)")" 2000 \
	"mnist_evaluate_topic reads the 2,000 messages over SASL_SSL"
out=$(psql_out "SELECT rows FROM mnist_evaluate_topic('$topic', 'kafka_sasl', 'kafka_sasl_g2', 2000, '$plain')")
check_eq "$out" 2000 "a superuser-named plaintext server is reached without the configured security properties"

# ---- a wrong password: a clear ERROR, a last_error for the worker, no crash loop
q "ALTER SYSTEM SET mnist_ml.kafka_properties_file = '$S/wrong.properties'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
out=$(psql_out "SET mnist_ml.kafka_timeout_ms = 5000" \
	"SELECT rows FROM mnist_evaluate_topic('$topic', 'kafka_sasl', 'kafka_sasl_g3', 2000)")
[[ "$out" == *"ERROR:  authentication to the Kafka broker failed"* && "$out" == *"SASL authentication error"* &&
	"$out" != *"$wrong"* ]] &&
	pass "wrong password: the topic function's ERROR names authentication" || fail "wrong password: $out"
# the online worker's consumer too: its job fails with the same ERROR (SQLSTATE 28000), where
# it used to wait paused as if the broker were down
q "CREATE TABLE ${t}_val AS SELECT pixels, label::int AS label FROM $t WHERE id <= 500"
q "SELECT mnist_online_start('kafka_sasl', '$topic', '${t}_val', every => '1 second', min_rows => 10, max_rows => 100, epochs => 1)" >/dev/null ||
	fail "start an online job"
job() { q "SELECT $1 FROM mnist_online_status WHERE model_name = 'kafka_sasl'"; }
wait_for "[ \"\$(job state)\" = failed ]" 60 "wrong password: the online job failed"
out=$(job last_error)
[[ $out == "authentication to the Kafka broker failed"* && $out != *"$wrong"* ]] &&
	pass "wrong password: the online job's last_error names authentication" ||
	fail "wrong password: the online job: $(job state): $out"
q "DELETE FROM mnist_online_jobs WHERE model_name = 'kafka_sasl'; DROP TABLE ${t}_val"
wait_for "[ -n \"\$(q 'SELECT pid FROM mnist_cdc_status')\" ] && q 'SELECT last_error FROM mnist_cdc_status' | grep -qi authentication" 60 \
	"wrong password: the worker's last_error names authentication"
pid=$(q "SELECT pid FROM mnist_cdc_status")
q "INSERT INTO $t (label, pixels) SELECT label, pixels FROM $t WHERE id <= 10"
sleep 5
check_eq "$(q "SELECT pid = $pid, broker_reachable FROM mnist_cdc_status")" "t|f" \
	"no crash loop: the same worker waits, the broker unreachable for it"
q "ALTER SYSTEM SET mnist_ml.kafka_properties_file = '$S/good.properties'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
cdc_wait_caught_up 120 "the right password again: the 10 rows written meanwhile acknowledged"

# ---- SCRAM-SHA-512 over SASL_SSL: librdkafka 2.6.1+ authenticates to Kafka 4.x, older ones
# send a proof Kafka 4.x refuses (the librdkafka bug fixed in 2.6.1)
rdkafka=$(pkg-config --modversion rdkafka)
q "ALTER SYSTEM SET mnist_ml.kafka_properties_file = '$S/scram.properties'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
if printf '2.6.1\n%s\n' "$rdkafka" | sort -V -C; then
	n=$(q "SELECT count(*) FROM $t")
	check_eq "$(q "SELECT rows FROM mnist_evaluate_topic('$topic', 'kafka_sasl', 'kafka_sasl_g4', 2000)")" "$n" \
		"SCRAM-SHA-512 (librdkafka $rdkafka): mnist_evaluate_topic reads the topic's $n messages"
	q "INSERT INTO $t (label, pixels) SELECT label, pixels FROM $t WHERE id <= 10"
	cdc_wait_caught_up 120 "SCRAM-SHA-512: 10 more rows acknowledged through the CDC worker"
	check_eq "$(q 'SELECT broker_reachable, failed FROM mnist_cdc_status')" "t|0" \
		"SCRAM-SHA-512: the worker reaches the broker, nothing failed"
else
	out=$(psql_out "SET mnist_ml.kafka_timeout_ms = 5000" \
		"SELECT rows FROM mnist_evaluate_topic('$topic', 'kafka_sasl', 'kafka_sasl_g4', 2000)")
	[[ "$out" == *"ERROR:  authentication to the Kafka broker failed"* ]] &&
		pass "SCRAM-SHA-512 (librdkafka $rdkafka, older than 2.6.1): refused by Kafka $KAFKA_VERSION, an ERROR naming authentication" ||
		fail "SCRAM-SHA-512 with librdkafka $rdkafka: $out"
fi
q "ALTER SYSTEM SET mnist_ml.kafka_properties_file = '$S/good.properties'" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null

# ---- the password is nowhere to be seen
check_eq "$(q "SHOW mnist_ml.kafka_properties_file")" "$S/good.properties" "SHOW names the file only"
leaks=$(grep -l -e "$secret" -e "$wrong" -e "$scram_secret" "$HARNESS_PG_LOG" "$TEST_TMP"/* 2>/dev/null)
check_eq "$leaks" "" "neither password appears in the server log or any output of the test"

q "DROP TABLE $t"

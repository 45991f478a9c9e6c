-- Names: tables, columns and models with quotes, spaces, unicode and 63+ bytes work; topic
-- names and group ids Kafka would refuse are rejected before anything connects.
\set schema access_names
\i sql/common/setup.psql

-- a table and columns with quotes, spaces and unicode
CREATE TABLE "scans ""Ω"" été" ("pix ""x"" é" bytea, "label y" smallint, id int);
INSERT INTO "scans ""Ω"" été" SELECT pixels, label, id FROM mnist_train ORDER BY id LIMIT 200;
SELECT mnist_train('"scans ""Ω"" été"', 'modèle "x" y', epochs => 1,
                   pixels_column => 'pix "x" é', label_column => 'label y') AS m1 \gset
SELECT name, metrics->'source' AS source FROM mnist_models WHERE id = :m1;
SELECT count(mnist_predict("pix ""x"" é", 'modèle "x" y')) AS predicted FROM "scans ""Ω"" été";
SELECT rows FROM mnist_evaluate('"scans ""Ω"" été"', 'modèle "x" y', 'pix "x" é', 'label y');
SELECT mnist_deploy('modèle "x" y') = :m1 AS deployed;
-- a bad row is named with the quoted table name
UPDATE "scans ""Ω"" été" SET "label y" = 10 WHERE id = 5;
SELECT try($$SELECT mnist_train('"scans ""Ω"" été"', 'x', pixels_column => 'pix "x" é', label_column => 'label y')$$);
SELECT try($$SELECT mnist_train('"scans ""Ω"" été"', 'x', pixels_column => 'pix', label_column => 'label y')$$);
UPDATE "scans ""Ω"" été" SET "label y" = 1 WHERE id = 5;

-- identifiers of 63+ bytes: PostgreSQL keeps their first 63 bytes (whole characters), for
-- CREATE TABLE as for the regclass and name arguments, so the long names given again match
SET client_min_messages = warning;
CREATE TABLE "t_ééééééééééééééééééééééééééééééééééééééééééééééééééé" (
	"p_ééééééééééééééééééééééééééééééééééééééééééééééééééé" bytea, label smallint);
RESET client_min_messages;
INSERT INTO "t_ééééééééééééééééééééééééééééééééééééééééééééééééééé" SELECT pixels, label FROM mnist_train ORDER BY id LIMIT 100;
SELECT relname, octet_length(relname::text) AS bytes FROM pg_class WHERE relname LIKE 't\_éé%';
SELECT mnist_train('"t_ééééééééééééééééééééééééééééééééééééééééééééééééééé"', 'long',
                   pixels_column => 'p_ééééééééééééééééééééééééééééééééééééééééééééééééééé', epochs => 1) > 0 AS trained;
SELECT metrics->'source'->>'pixels_column' = (SELECT attname FROM pg_attribute
       WHERE attrelid = '"t_ééééééééééééééééééééééééééééééééééééééééééééééééééé"'::regclass AND attnum = 1)
       AS column_recorded
  FROM mnist_models WHERE name = 'long';

-- model names: 200 bytes (in whole characters) are stored as given, 201 are refused
SELECT mnist_train('"scans ""Ω"" été"', repeat('é', 100), pixels_column => 'pix "x" é',
                   label_column => 'label y', epochs => 1) > 0 AS stored;
SELECT octet_length(name) AS name_bytes FROM mnist_models WHERE name = repeat('é', 100);
SELECT try($$SELECT mnist_train('"scans ""Ω"" été"', repeat('é', 100) || 'x', pixels_column => 'pix "x" é', label_column => 'label y')$$);
-- a name that cannot exist is refused by its length, not looked up (nor echoed)
SELECT try($$SELECT mnist_predict(pixels, repeat('x', 10000)) FROM mnist_train LIMIT 1$$);
SELECT try($$SELECT mnist_predict(pixels, '') FROM mnist_train LIMIT 1$$);

-- topics: 1 to 249 of [A-Za-z0-9._-]; unicode, quotes, spaces and 250 characters are refused
-- before anything connects (the servers named here do not exist)
SET mnist_ml.kafka_timeout_ms = 300;
SELECT try($$SELECT mnist_train_topic('tf.public.été', bootstrap_servers => '127.0.0.1:9')$$);
SELECT try($$SELECT mnist_train_topic('tf."x"', bootstrap_servers => '127.0.0.1:9')$$);
SELECT try($$SELECT * FROM mnist_evaluate_topic('tf x', bootstrap_servers => '127.0.0.1:9')$$);
SELECT try(format('SELECT * FROM mnist_predict_topic(%L, bootstrap_servers => %L)', repeat('t', 250), '127.0.0.1:9'));
SELECT try(format('SELECT * FROM mnist_online_start(%L, %L, %L)', 'modèle "x" y', repeat('t', 250), 'mnist_train'));
-- 249 characters pass the name rule and reach the (missing) broker
SELECT regexp_replace(try(format('SELECT mnist_train_topic(%L, bootstrap_servers => %L)', repeat('t', 249), '127.0.0.1:9')),
                      ':.*', ': ...') AS topic_249;
-- group ids are passed to Kafka as given (any text but the empty string)
SELECT regexp_replace(try($$SELECT * FROM mnist_evaluate_topic('tf.t', 'modèle "x" y', group_id => 'grüppe "x" y', bootstrap_servers => '127.0.0.1:9')$$),
                      ':.*', ': ...') AS unicode_group_id;
SELECT try($$SELECT * FROM mnist_evaluate_topic('tf.t', 'modèle "x" y', group_id => '', bootstrap_servers => '127.0.0.1:9')$$);
RESET mnist_ml.kafka_timeout_ms;

-- change data capture: a table whose topic name Kafka would refuse is refused by a snapshot
CREATE TABLE "cdc été" (pixels bytea, label smallint);
SELECT try($$SELECT mnist_cdc_snapshot('"cdc été"')$$);

DELETE FROM mnist_models WHERE name IN ('modèle "x" y', 'long') OR name = repeat('é', 100);
DELETE FROM mnist_deployments WHERE name IN ('modèle "x" y', 'long') OR name = repeat('é', 100);
DROP SCHEMA access_names CASCADE;

-- mnist_ml 1.1 -> 1.2.  Every SQL change since 1.1 goes here until 1.2 is released; the result
-- must equal a fresh 1.2 install (test/integration/extension_upgrade.sh compares the catalogs).
\echo Use "ALTER EXTENSION mnist_ml UPDATE TO '1.2'" to load this file. \quit

-- mnist_cdc_status: which table's missing topic the stream waits for, why, since when.  The
-- view is replaced with columns added at the end, so that users' views on it survive.
CREATE FUNCTION mnist_cdc_waiting(
    OUT waiting_table text, OUT waiting_reason text, OUT waiting_since timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'mnist_cdc_waiting'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_waiting() IS
'The captured table whose missing topic the change data capture stream waits for, why, and since when (NULLs when none).';

CREATE OR REPLACE VIEW mnist_cdc_status AS
    SELECT s.*, w.waiting_table, w.waiting_reason, w.waiting_since
    FROM mnist_cdc_status() s, mnist_cdc_waiting() w;
COMMENT ON VIEW mnist_cdc_status IS
'One row describing change data capture to Kafka (see mnist_cdc_status() and mnist_cdc_waiting()).';

-- Online learning (issue 20): messages lost to retention and a recreated topic are counted and
-- reported (rounds, jobs, the status view's new columns at its end, so views on it stay)
ALTER TABLE mnist_online_jobs ADD COLUMN last_warning text, ADD COLUMN last_warning_at timestamptz;
COMMENT ON COLUMN mnist_online_jobs.last_warning IS 'The job''s last warning: messages deleted by retention before they were read, or its topic deleted and created again.';
COMMENT ON COLUMN mnist_online_jobs.last_warning_at IS 'When last_warning was recorded.';
ALTER TABLE mnist_online_rounds ADD COLUMN lost bigint NOT NULL DEFAULT 0, ADD COLUMN warning text;
COMMENT ON COLUMN mnist_online_rounds.lost IS 'Messages deleted by retention (or DeleteRecords) before the job read them, between from_offsets and to_offsets.';
COMMENT ON COLUMN mnist_online_rounds.warning IS 'What the job warned about since its previous round (messages lost to retention, its topic created again), NULL: nothing.';
CREATE OR REPLACE VIEW mnist_online_status AS
SELECT j.model_name, j.topic,
	   CASE WHEN j.started_in = mnist_online_instance() THEN j.state ELSE 'stopped' END AS state,
	   r.finished_at AS last_round_at,
	   (SELECT count(*) FROM mnist_online_rounds x WHERE x.model_name = j.model_name) AS rounds,
	   (SELECT coalesce(sum(x.rows), 0) FROM mnist_online_rounds x WHERE x.model_name = j.model_name) AS rows_consumed,
	   j.offsets,
	   CASE WHEN r.deployed THEN r.accuracy_after ELSE r.accuracy_before END AS deployed_accuracy,
	   CASE WHEN j.started_in = mnist_online_instance() THEN j.last_error
			ELSE 'restored from another database: start it again with mnist_online_start' END AS last_error,
	   j.last_error_at,
	   (SELECT coalesce(sum(x.lost), 0) FROM mnist_online_rounds x WHERE x.model_name = j.model_name) AS rows_lost,
	   j.last_warning, j.last_warning_at
  FROM mnist_online_jobs j
  LEFT JOIN LATERAL (SELECT * FROM mnist_online_rounds x WHERE x.model_name = j.model_name
					 ORDER BY x.id DESC LIMIT 1) r ON true;
COMMENT ON VIEW mnist_online_status IS 'Each online learning job: state, last round, rounds and rows consumed, offsets, the deployed model''s validation accuracy at the last round, last error, messages lost to retention, last warning.';

-- Versioned entry points: the functions whose signature or row type changed between 1.0 and
-- 1.1 are bound to the C symbol of their 1.1 form (the released scripts' symbols, which serve
-- 1.0's and 1.1's forms alike, stay for databases not updated yet).
CREATE OR REPLACE FUNCTION mnist_train(
	source regclass,
	model_name text DEFAULT 'default',
	epochs int DEFAULT 5,
	batch_size int DEFAULT 64,
	learning_rate float8 DEFAULT 0.001,
	hidden_units int DEFAULT 128,
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label',
	seed bigint DEFAULT 0,
	init_model text DEFAULT NULL,
	validation regclass DEFAULT NULL,
	deploy text DEFAULT 'always')
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_train_1_1'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET synchronize_seqscans = off;
CREATE OR REPLACE FUNCTION mnist_cdc_status(
    OUT slot_name text, OUT state text, OUT pid integer, OUT database text,
    OUT confirmed_lsn pg_lsn, OUT lag_bytes bigint,
    OUT produced bigint, OUT acknowledged bigint, OUT failed bigint,
    OUT last_error text, OUT last_error_at timestamptz, OUT broker_reachable boolean,
    OUT skipped bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'mnist_cdc_status_1_1'
LANGUAGE C STRICT VOLATILE;
CREATE OR REPLACE FUNCTION mnist_train_topic(topic text, model_name text DEFAULT 'default',
								  epochs int DEFAULT 5, batch_size int DEFAULT 64,
								  learning_rate float8 DEFAULT 0.001,
								  hidden_units int DEFAULT 128, seed bigint DEFAULT 0,
								  init_model text DEFAULT NULL,
								  bootstrap_servers text DEFAULT NULL,
								  validation regclass DEFAULT NULL,
								  deploy text DEFAULT 'always')
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_train_topic_1_1'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

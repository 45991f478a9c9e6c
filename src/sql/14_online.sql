-- Online learning: jobs that keep a model learning from a Kafka topic, run by the online
-- learning worker (src/online.c, src/online_worker.c).

CREATE TABLE mnist_online_jobs (
	model_name text PRIMARY KEY,
	topic text NOT NULL,
	validation text NOT NULL,
	group_id text NOT NULL,
	every interval NOT NULL,
	min_rows int NOT NULL,
	max_rows int NOT NULL,
	epochs int NOT NULL,
	batch_size int NOT NULL,
	learning_rate float8 NOT NULL,
	start_from text NOT NULL,
	bootstrap_servers text,
	started_by regrole NOT NULL,
	started_at timestamptz NOT NULL,
	started_in text NOT NULL,
	state text NOT NULL,
	offsets jsonb,
	last_model_id bigint,
	served_model_id bigint,
	last_error text,
	last_error_at timestamptz,
	last_warning text,
	last_warning_at timestamptz
);
COMMENT ON TABLE mnist_online_jobs IS 'Online learning jobs, one per model name: registered by mnist_online_start, run by the online learning worker; see mnist_online_status.';
COMMENT ON COLUMN mnist_online_jobs.model_name IS 'The model the job keeps training (its own line of candidates, deployed through the gate).';
COMMENT ON COLUMN mnist_online_jobs.topic IS 'Kafka topic of labelled images (key = label, value = 784 comma-separated pixels).';
COMMENT ON COLUMN mnist_online_jobs.validation IS 'Qualified name of the validation table (pixels, label), read as started_by every round.';
COMMENT ON COLUMN mnist_online_jobs.group_id IS 'Consumer group id (the job assigns partitions itself and commits nothing to the group).';
COMMENT ON COLUMN mnist_online_jobs.every IS 'Time between rounds.';
COMMENT ON COLUMN mnist_online_jobs.min_rows IS 'A round waits for at least this many new messages.';
COMMENT ON COLUMN mnist_online_jobs.max_rows IS 'A round takes at most this many new messages; the rest wait for the next round.';
COMMENT ON COLUMN mnist_online_jobs.epochs IS 'Epochs over the new messages per round.';
COMMENT ON COLUMN mnist_online_jobs.batch_size IS 'Mini-batch size.';
COMMENT ON COLUMN mnist_online_jobs.learning_rate IS 'Adam learning rate.';
COMMENT ON COLUMN mnist_online_jobs.start_from IS 'latest or earliest: where a job without stored offsets starts reading.';
COMMENT ON COLUMN mnist_online_jobs.bootstrap_servers IS 'Kafka servers, or NULL for mnist_ml.kafka_bootstrap_servers.';
COMMENT ON COLUMN mnist_online_jobs.started_by IS 'The role that started the job; every round runs as this role.';
COMMENT ON COLUMN mnist_online_jobs.started_at IS 'When mnist_online_start last started the job.';
COMMENT ON COLUMN mnist_online_jobs.started_in IS 'The cluster (system identifier) and database OID where the job was started: a job restored elsewhere by pg_dump is stopped.';
COMMENT ON COLUMN mnist_online_jobs.state IS 'running, paused (broker unreachable; resumes by itself), stopped, or failed (see last_error).';
COMMENT ON COLUMN mnist_online_jobs.offsets IS 'Next offset of each partition ({"partition": offset}), stored in the transaction of each round: the worker resumes there.';
COMMENT ON COLUMN mnist_online_jobs.last_model_id IS 'The job''s last candidate, from which the next round continues (NULL: start from the deployed model).';
COMMENT ON COLUMN mnist_online_jobs.served_model_id IS 'The model serving the name after the job''s last round: if another has been deployed since, the next round is superseded.';
COMMENT ON COLUMN mnist_online_jobs.last_error IS 'Why the job is paused or failed.';
COMMENT ON COLUMN mnist_online_jobs.last_error_at IS 'When last_error was recorded.';
COMMENT ON COLUMN mnist_online_jobs.last_warning IS 'The job''s last warning: messages deleted by retention before they were read, or its topic deleted and created again.';
COMMENT ON COLUMN mnist_online_jobs.last_warning_at IS 'When last_warning was recorded.';

CREATE TABLE mnist_online_rounds (
	id bigserial PRIMARY KEY,
	model_name text NOT NULL,
	finished_at timestamptz NOT NULL DEFAULT now(),
	seconds float8 NOT NULL,
	rows bigint NOT NULL,
	skipped bigint NOT NULL,
	from_offsets jsonb NOT NULL,
	to_offsets jsonb NOT NULL,
	model_id bigint NOT NULL,
	accuracy_before float8,
	accuracy_after float8 NOT NULL,
	deployed boolean NOT NULL,
	reason text NOT NULL,
	lost bigint NOT NULL DEFAULT 0,
	warning text
);
CREATE INDEX mnist_online_rounds_name_id ON mnist_online_rounds (model_name, id);
COMMENT ON TABLE mnist_online_rounds IS 'One row per online learning round, written in the round''s transaction with its model, its deployment decision and its offsets.';
COMMENT ON SEQUENCE mnist_online_rounds_id_seq IS 'Ids of mnist_online_rounds.';
COMMENT ON COLUMN mnist_online_rounds.id IS 'Round id.';
COMMENT ON COLUMN mnist_online_rounds.model_name IS 'The job''s model name.';
COMMENT ON COLUMN mnist_online_rounds.finished_at IS 'When the round committed.';
COMMENT ON COLUMN mnist_online_rounds.seconds IS 'Seconds from the round''s start (messages taken) to its commit.';
COMMENT ON COLUMN mnist_online_rounds.rows IS 'Messages trained on.';
COMMENT ON COLUMN mnist_online_rounds.skipped IS 'Bad messages skipped.';
COMMENT ON COLUMN mnist_online_rounds.from_offsets IS 'Offsets the round started from ({"partition": offset}).';
COMMENT ON COLUMN mnist_online_rounds.to_offsets IS 'Offsets after the round: the next round starts there.';
COMMENT ON COLUMN mnist_online_rounds.model_id IS 'The candidate stored by the round.';
COMMENT ON COLUMN mnist_online_rounds.accuracy_before IS 'Validation accuracy of the model deployed at decision time (NULL: none).';
COMMENT ON COLUMN mnist_online_rounds.accuracy_after IS 'Validation accuracy of the candidate.';
COMMENT ON COLUMN mnist_online_rounds.deployed IS 'Whether the gate deployed the candidate.';
COMMENT ON COLUMN mnist_online_rounds.reason IS 'The gate''s decision with both accuracies.';
COMMENT ON COLUMN mnist_online_rounds.lost IS 'Messages deleted by retention (or DeleteRecords) before the job read them, between from_offsets and to_offsets.';
COMMENT ON COLUMN mnist_online_rounds.warning IS 'What the job warned about since its previous round (messages lost to retention, its topic created again), NULL: nothing.';

-- jobs come back from pg_dump stopped (started_in names the original database)
SELECT pg_catalog.pg_extension_config_dump('mnist_online_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('mnist_online_rounds', '');
SELECT pg_catalog.pg_extension_config_dump('mnist_online_rounds_id_seq', '');

REVOKE ALL ON mnist_online_jobs, mnist_online_rounds FROM PUBLIC;
GRANT SELECT ON mnist_online_jobs, mnist_online_rounds TO PUBLIC;

CREATE FUNCTION mnist_online_instance() RETURNS text
AS 'MODULE_PATHNAME', 'mnist_online_instance'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION mnist_online_instance() IS 'This cluster''s system identifier and this database''s OID, as recorded in mnist_online_jobs.started_in.';

CREATE FUNCTION mnist_online_start(model_name text, topic text, validation regclass,
								   group_id text DEFAULT NULL,
								   every interval DEFAULT '1 minute',
								   min_rows int DEFAULT 1000, max_rows int DEFAULT 100000,
								   epochs int DEFAULT 1, batch_size int DEFAULT 64,
								   learning_rate float8 DEFAULT 0.001,
								   start_from text DEFAULT 'latest',
								   bootstrap_servers text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'mnist_online_start'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text) IS
'Starts (or restarts) online learning of a model from a Kafka topic: the online learning worker trains a candidate on each round''s new messages and deploys it if its accuracy on validation is at least the deployed model''s. Not granted to PUBLIC.';
REVOKE ALL ON FUNCTION mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text) FROM PUBLIC;

CREATE FUNCTION mnist_online_stop(model_name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'mnist_online_stop'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mnist_online_stop(text) IS 'Stops online learning of a model (its stored offsets are kept for a later start); false if it was not running. Not granted to PUBLIC.';
REVOKE ALL ON FUNCTION mnist_online_stop(text) FROM PUBLIC;

CREATE VIEW mnist_online_status AS
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
GRANT SELECT ON mnist_online_status TO PUBLIC;

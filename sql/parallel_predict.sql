-- Parallel scoring: mnist_predict and mnist_predict_proba are PARALLEL SAFE, so a query that
-- scores a table can run them in parallel workers.  Each worker loads the model into its own
-- cache and classifies exactly as a serial plan does; a model stored since is served by the
-- workers of the next statement too.
\set schema parallel_predict
\i sql/common/setup.psql
SELECT mnist_train('mnist_train', 'par', epochs => 1, seed => 3) > 0 AS trained;
SELECT p.oid::regprocedure AS function, p.proparallel
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mnist_ml'
 WHERE p.proname IN ('mnist_predict', 'mnist_predict_proba', 'mnist_evaluate',
					 'mnist_confusion_matrix', 'mnist_pixels', 'mnist_render')
 ORDER BY 1::text;

\i sql/common/workers_launched.psql

-- the serial answer
CREATE TABLE serial AS
SELECT id, mnist_predict(pixels, 'par') AS predicted, mnist_predict_proba(pixels, 'par') AS proba
  FROM mnist_train;

-- the same query on 2 workers, the leader only gathering: every row is scored in a worker
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
\set scored 'SELECT id, mnist_predict(pixels, ''par'') AS predicted, mnist_predict_proba(pixels, ''par'') AS proba FROM mnist_train'
EXPLAIN (COSTS OFF, VERBOSE) :scored;
SELECT workers_launched(:'scored');
CREATE TABLE par AS :scored;
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE p.predicted IS DISTINCT FROM s.predicted) AS classes_differing,
	   count(*) FILTER (WHERE p.proba IS DISTINCT FROM s.proba) AS probabilities_differing
  FROM par p FULL JOIN serial s USING (id);

-- a newer model: the next parallel statement's workers serve it
RESET parallel_leader_participation;
SELECT mnist_train('mnist_train', 'par', epochs => 1, seed => 4) > 0 AS trained_newer;
SET max_parallel_workers_per_gather = 0;
SELECT sum(id * mnist_predict(pixels, 'par')) AS serial_sum FROM mnist_train \gset
SELECT :serial_sum <> sum(id * predicted) AS newer_model_differs FROM serial;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
SELECT workers_launched('SELECT sum(id * mnist_predict(pixels, ''par'')) FROM mnist_train');
SELECT sum(id * mnist_predict(pixels, 'par')) = :serial_sum AS workers_serve_newer_model FROM mnist_train;

-- with the planner's default settings, scoring a larger table (80,000 rows, 70 MB) runs in
-- parallel: the functions' COST tells the planner a prediction is worth a worker
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;
CREATE TABLE big AS SELECT row_number() OVER () AS id, pixels FROM generate_series(1, 10), mnist_train;
ANALYZE big;
EXPLAIN (COSTS OFF) SELECT id, mnist_predict(pixels, 'par') FROM big;
EXPLAIN (COSTS OFF) SELECT mnist_predict_proba(pixels, 'par') FROM big;
SELECT workers_launched('SELECT id, mnist_predict(pixels, ''par'') FROM big') AS default_settings_workers;

RESET ALL;
SET client_min_messages = warning;
DROP SCHEMA parallel_predict CASCADE;
DELETE FROM mnist_models WHERE name = 'par';

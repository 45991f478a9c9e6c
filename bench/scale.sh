#!/bin/bash
# bench/scale.sh: mnist_predict over a large table, serial and with 1 and 2 parallel workers.
#
# The table repeats the 60,000 Fashion-MNIST training rows SCALE times (default 10: 600,000
# rows, about 500 MB).  For each max_parallel_workers_per_gather of 0, 1 and 2 (the leader
# takes part, as by default) it times two statements:
#   aggregate: SELECT sum(mnist_predict(pixels, m)) FROM big    (a partial sum in each worker)
#   rows:      SELECT id, mnist_predict(pixels, m) FROM big   (every row passes the Gather;
#              EXPLAIN ANALYZE discards them in the leader)
# and, as the baseline, the same with length(pixels) instead of mnist_predict.  It shows first
# how many workers the planner chooses with its default costs for the rows statement.  The plans are
# forced parallel (parallel_setup_cost = parallel_tuple_cost = 0, min_parallel_table_scan_size
# = 0) so each setting runs the plan it names; "workers" is what the executor launched.
# Each time is the best of REPS rounds (default 3), the settings alternating within a round;
# it is EXPLAIN (ANALYZE, TIMING OFF)'s execution time (nothing is sent to the client).  It also
# checks that every setting gives the same classes (a checksum of id x class).
#
# Usage: MNIST_DATA=dir [PGHOST=.. PGPORT=.. PGUSER=.. PGDATABASE=..] bash bench/scale.sh
# The server needs max_worker_processes and max_parallel_workers >= 2 free.  Everything lives
# in a scratch schema bench_scale, dropped at the end.
set -euo pipefail
: "${MNIST_DATA:?set MNIST_DATA to the prepared data directory (test/prepare-data)}"
REPS=${REPS:-3}
SCALE=${SCALE:-10}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -v bench="$(dirname "$0")" -v data="$MNIST_DATA" -v reps="$REPS" -v scale="$SCALE")

"${PSQL[@]}" <<'SQL'
\set schema bench_scale
\set f :bench '/setup.psql'
\i :f
\set ECHO none
\set f :data '/fashion/mnist_train.sql'
\i :f
SELECT mnist_train('mnist_train', 'bench_scale', epochs => 1) > 0 AS trained \gset
CREATE TABLE big AS
SELECT row_number() OVER () AS id, pixels, label
  FROM generate_series(1, :scale) AS r, mnist_train;
DROP TABLE mnist_train;
VACUUM ANALYZE big;

-- execution time (ms) and workers launched of one statement, from EXPLAIN ANALYZE
CREATE FUNCTION run(stmt text, workers int, OUT ms float8, OUT launched int)
LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	PERFORM set_config('max_parallel_workers_per_gather', workers::text, true);
	EXECUTE 'EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ' || stmt INTO plan;
	ms := (plan->0->>'Execution Time')::float8;
	launched := coalesce((plan->0->'Plan'->>'Workers Launched')::int,
						 (plan->0->'Plan'->'Plans'->0->>'Workers Launched')::int,
						 (plan->0->'Plan'->'Plans'->0->'Plans'->0->>'Workers Launched')::int, 0);
END $$;

-- what the planner does with its default costs (max_parallel_workers_per_gather = 2)
CREATE TEMP TABLE default_plan AS
SELECT workers, rows_s FROM
	(SELECT (run('SELECT id, mnist_predict(pixels, ''bench_scale'') FROM big', 2)).*) r,
	LATERAL (SELECT r.launched AS workers, round((SELECT count(*) FROM big) / r.ms * 1000) AS rows_s) x;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers = 8;
SELECT set_config('bench.reps', :'reps', false) \gset
CREATE TEMP TABLE times (what text, fn text, workers int, ms float8, launched int);
DO $$
DECLARE
	stmts text[] := ARRAY[
		'aggregate', 'SELECT sum(%s) FROM big',
		'rows', 'SELECT id, %s FROM big'];
	fns text[] := ARRAY['length(pixels)', 'mnist_predict(pixels, ''bench_scale'')'];
	f text;
	r record;
BEGIN
	FOR i IN 1..current_setting('bench.reps')::int LOOP
		FOR s IN 1..2 LOOP
			FOREACH f IN ARRAY fns LOOP
				FOR w IN 0..2 LOOP
					r := run(format(stmts[2 * s], f), w);
					INSERT INTO times VALUES (stmts[2 * s - 1], f, w, r.ms, r.launched);
				END LOOP;
			END LOOP;
		END LOOP;
	END LOOP;
END $$ LANGUAGE plpgsql;

-- the same classes whatever the plan: with 2 workers and without the leader, the workers
-- classify every row
SET max_parallel_workers_per_gather = 0;
SELECT sum(id * mnist_predict(pixels, 'bench_scale')) AS serial_sum FROM big \gset
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
SELECT sum(id * mnist_predict(pixels, 'bench_scale')) AS parallel_sum FROM big \gset
RESET parallel_leader_participation;

\set ECHO all
\pset footer off
SELECT count(*) AS rows, pg_size_pretty(pg_table_size('big')) AS size,
	   :'serial_sum' = :'parallel_sum' AS "same classes serial / 2 workers only"
  FROM big;
SELECT workers AS "default costs: workers launched", rows_s AS "rows/s" FROM default_plan;
SELECT t.what AS statement, CASE WHEN t.fn LIKE 'mnist%' THEN 'mnist_predict' ELSE 'length' END AS fn,
	   t.workers AS "max workers", max(t.launched) AS launched,
	   round(min(t.ms)::numeric) AS "best ms",
	   round((SELECT count(*) FROM big) / min(t.ms) * 1000) AS "rows/s",
	   round((min(b.ms) / min(t.ms))::numeric, 2) AS "speed-up vs 0 workers"
  FROM times t JOIN times b ON b.what = t.what AND b.fn = t.fn AND b.workers = 0
 GROUP BY t.what, t.fn, t.workers
 ORDER BY t.what, t.fn DESC, t.workers;
\set ECHO none
DROP SCHEMA bench_scale CASCADE;
DELETE FROM mnist_models WHERE name = 'bench_scale';
SQL

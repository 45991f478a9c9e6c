#!/bin/bash
# bench/predict.sh: inference speed of mnist_predict and of the mnist_classify trigger.
#
# Measures in one run, on a 10,000-row table of real MNIST digits (and of Fashion-MNIST):
#   - SELECT mnist_predict(pixels) FROM t   vs the trivial SELECT length(pixels) FROM t
#     (target: >= 100,000 rows/s in one backend)
#   - INSERT of the 10,000 rows into a table with the classify trigger, vs the same insert
#     without a trigger and with a trivial PL/pgSQL trigger (target: <= 1.5x the plain insert)
# Each figure is the best of REPS rounds (default 5); the compared statements alternate
# within each round. Wall time and the backend's CPU time (from /proc/self/schedstat, robust on
# a loaded machine) are both printed.
#
# Usage: MNIST_DATA=dir [PGHOST=.. PGPORT=.. PGUSER=.. PGDATABASE=..] bash bench/predict.sh
# The extension is created in that database if missing; everything else lives in a
# scratch schema bench_predict, dropped at the end.
set -euo pipefail
: "${MNIST_DATA:?set MNIST_DATA to the prepared data directory (test/prepare-data)}"
REPS=${REPS:-5}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -v data="$MNIST_DATA" -v reps="$REPS")

"${PSQL[@]}" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS mnist_ml;
DROP SCHEMA IF EXISTS bench_predict CASCADE;
CREATE SCHEMA bench_predict;
SET search_path = bench_predict, public;
SET mnist_ml.progress = off;
\set ECHO none
\set f :data '/digits/mnist_train.sql'
\i :f
\set f :data '/digits/mnist_test.sql'
\i :f
CREATE TABLE digits AS SELECT pixels, label FROM mnist_train UNION ALL SELECT pixels, label FROM mnist_test;
DROP TABLE mnist_train, mnist_test;
\set f :data '/fashion/mnist_test.sql'
\i :f
CREATE TABLE fashion AS SELECT pixels, label FROM mnist_test;
DROP TABLE mnist_test;
VACUUM ANALYZE digits;
VACUUM ANALYZE fashion;
SELECT mnist_train('digits', 'bench_digits', epochs => 1) > 0 AS trained \gset
SELECT mnist_train('fashion', 'bench_fashion', epochs => 1) > 0 AS trained \gset

-- CPU time of this backend in seconds (Linux /proc/self/schedstat: ns on a CPU), so that the
-- figures hold on a loaded machine; NULL where unavailable
CREATE FUNCTION cpu_seconds() RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN
	RETURN split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::float8 / 1e9;
EXCEPTION WHEN OTHERS THEN
	RETURN NULL;
END $$;

-- best wall and CPU times in seconds of stmts[k] (each after setups[k] when not NULL) over
-- :reps rounds; the statements alternate within each round, so a load change on this shared
-- machine hits them alike
CREATE FUNCTION best(stmts text[], setups text[] DEFAULT NULL)
RETURNS TABLE(wall float8[], cpu float8[]) LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	c0 float8;
BEGIN
	wall := array_fill('Infinity'::float8, ARRAY[cardinality(stmts)]);
	cpu := wall;
	FOR i IN 1..current_setting('bench.reps')::int LOOP
		FOR k IN 1..cardinality(stmts) LOOP
			IF setups[k] IS NOT NULL THEN EXECUTE setups[k]; END IF;
			c0 := cpu_seconds();
			t0 := clock_timestamp();
			EXECUTE stmts[k];
			wall[k] := least(wall[k], extract(epoch FROM clock_timestamp() - t0)::float8);
			cpu[k] := least(cpu[k], cpu_seconds() - c0);
		END LOOP;
	END LOOP;
	RETURN NEXT;
END $$;
SELECT set_config('bench.reps', :'reps', false) \gset

CREATE TABLE plain (pixels bytea, predicted smallint);
CREATE TABLE plpgsql_trig (pixels bytea, predicted smallint);
CREATE TABLE classify_trig (pixels bytea, predicted smallint);
CREATE FUNCTION trivial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.predicted := 0;
	RETURN NEW;
END $$;
CREATE TRIGGER t BEFORE INSERT ON plpgsql_trig FOR EACH ROW EXECUTE FUNCTION trivial();
CREATE TRIGGER t BEFORE INSERT ON classify_trig FOR EACH ROW
	EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'bench_digits');

CREATE TEMP TABLE figures AS
SELECT src, t.wall[1] AS baseline_s, t.wall[2] AS predict_s, t.wall[3] AS proba_s,
	   t.cpu[1] AS baseline_cpu, t.cpu[2] AS predict_cpu,
	   (SELECT count(*) FROM bench_predict.digits) AS n
  FROM unnest(ARRAY['digits', 'fashion']) AS src,
	   LATERAL best(ARRAY[format('SELECT sum(length(pixels)) FROM %I', src),
						  format('SELECT sum(mnist_predict(pixels, %L)) FROM %I', 'bench_' || src, src),
						  format('SELECT sum(array_length(mnist_predict_proba(pixels, %L), 1)) FROM %I',
								 'bench_' || src, src)]) AS t;
\set ECHO all
\pset footer off
SELECT src AS "10,000 rows of", n AS rows,
	   round(n / baseline_s) AS "length() rows/s",
	   round(n / predict_s) AS "mnist_predict rows/s",
	   round(n / proba_s) AS "mnist_predict_proba rows/s",
	   round((predict_s / baseline_s)::numeric, 1) AS "predict/length time",
	   round(n / predict_cpu) AS "mnist_predict rows/CPU s",
	   CASE WHEN n / predict_s >= 100000 THEN 'met' ELSE 'MISSED' END AS "target >= 100,000 rows/s"
  FROM figures ORDER BY src;
\set ECHO none
CREATE TEMP TABLE inserts AS
SELECT t.wall[1] AS plain_s, t.wall[2] AS plpgsql_s, t.wall[3] AS classify_s,
	   t.cpu[1] AS plain_cpu, t.cpu[2] AS plpgsql_cpu, t.cpu[3] AS classify_cpu
  FROM best(ARRAY['INSERT INTO plain (pixels) SELECT pixels FROM digits',
				  'INSERT INTO plpgsql_trig (pixels) SELECT pixels FROM digits',
				  'INSERT INTO classify_trig (pixels) SELECT pixels FROM digits'],
			ARRAY['TRUNCATE plain', 'TRUNCATE plpgsql_trig', 'TRUNCATE classify_trig']) AS t;
SELECT count(*) FILTER (WHERE predicted = mnist_predict(pixels, 'bench_digits')) = count(*) AS all_classified
  FROM classify_trig \gset
\set ECHO all
SELECT 'wall' AS time,
	   round((plain_s * 1000)::numeric, 1) AS "plain insert ms",
	   round((plpgsql_s * 1000)::numeric, 1) AS "trivial plpgsql trigger ms",
	   round((classify_s * 1000)::numeric, 1) AS "classify trigger ms",
	   round((plpgsql_s / plain_s)::numeric, 2) AS "plpgsql/plain",
	   round((classify_s / plain_s)::numeric, 2) AS "classify/plain",
	   round((classify_s / plpgsql_s)::numeric, 2) AS "classify/plpgsql",
	   CASE WHEN classify_s / plain_s <= 1.5 THEN 'met' ELSE 'MISSED' END AS "target <= 1.5x",
	   :'all_classified' AS "rows classified = mnist_predict"
  FROM inserts
UNION ALL
SELECT 'CPU',
	   round((plain_cpu * 1000)::numeric, 1),
	   round((plpgsql_cpu * 1000)::numeric, 1),
	   round((classify_cpu * 1000)::numeric, 1),
	   round((plpgsql_cpu / plain_cpu)::numeric, 2),
	   round((classify_cpu / plain_cpu)::numeric, 2),
	   round((classify_cpu / plpgsql_cpu)::numeric, 2),
	   CASE WHEN classify_cpu / plain_cpu <= 1.5 THEN 'met' ELSE 'MISSED' END,
	   :'all_classified'
  FROM inserts;
\set ECHO none
DROP SCHEMA bench_predict CASCADE;
DELETE FROM mnist_models WHERE name IN ('bench_digits', 'bench_fashion');
SQL

#!/bin/bash
# bench/predict.sh: inference speed of mnist_predict and of the mnist_classify trigger.
#
# Measures in one run, on a 10,000-row table of real MNIST digits (and of Fashion-MNIST), on
# every CPU path this CPU has (mnist_ml.cpu_path; the same model under a name per path, so that
# each path's cached model keeps its own screen), the paths alternating within each round:
#   - SELECT mnist_predict(pixels) FROM t   vs the trivial SELECT length(pixels) FROM t
#     (targets: >= 100,000 rows/s in one backend; on the AVX2 paths (avx2, avxvnni) digits
#     >= 800,000 rows/s and Fashion >= 450,000 rows/s)
#   - INSERT of the 10,000 rows into a table with the classify trigger, vs the same insert
#     without a trigger and with a trivial PL/pgSQL trigger (targets: <= 1.5x the plain insert;
#     on the AVX2 paths, the bare table's ratio within 1.1x the trivial trigger's),
#     for two tables: the bare (pixels, predicted), and the reference's MNIST table as
#     mnist2sql creates it (id serial primary key, label, pixels) plus predicted
#   - a new connection's first prediction (library preloaded, 128-unit model, the first
#     SELECT mnist_predict(pixels) FROM t LIMIT 1 after a SELECT 1; target <= 2 ms), the same
#     statement run again, and the floor any first query pays (SELECT length(pixels) FROM t
#     LIMIT 1 as the first query after SELECT 1 of another new connection); and a 10,000-row
#     scoring as a new connection's first statement (cold) vs run again (warm), and the floor
#     of that (sum(length(pixels)) as a new connection's first statement); medians over CONNS
#     new connections (default 15), the cold and the baseline connections alternating
#   - the 10,000-row sum(mnist_predict(...)) with the default plan (parallel workers, each
#     loading the model cold) vs the serial plan, and what a worker costs without a model
#     (sum(length(pixels)) on a plan forced to one worker vs serial)
# Each figure is the best of REPS rounds (default 5); the compared statements alternate
# within each round. Wall time and the backend's CPU time (from /proc/self/schedstat, robust on
# a loaded machine) are both printed.  The cold figures are psql's \timing of each statement.
#
# Usage: MNIST_DATA=dir [PGHOST=.. PGPORT=.. PGUSER=.. PGDATABASE=..] bash bench/predict.sh
# The extension is created in that database if missing; everything else lives in a
# scratch schema bench_predict, dropped at the end.
set -euo pipefail
: "${MNIST_DATA:?set MNIST_DATA to the prepared data directory (test/prepare-data)}"
REPS=${REPS:-5}
CONNS=${CONNS:-15}
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs;" \
	"$(grep -m 1 -o -w -E 'avx2|fma|avx512f|avx512_vnni|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')(of avx2 fma avx512f avx512_vnni avx_vnni);" \
	"load average: $(cut -d' ' -f1-3 /proc/loadavg)" 
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -v bench="$(dirname "$0")" -v data="$MNIST_DATA" -v reps="$REPS")

"${PSQL[@]}" <<'SQL'
\set schema bench_predict
\set f :bench '/setup.psql'
\i :f
-- one backend: mnist_predict's COST would otherwise let the sums below run in parallel workers
-- (bench/scale.sh measures those)
SET max_parallel_workers_per_gather = 0;
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

-- the CPU paths this CPU has (best first), and a copy of each model per path
CREATE FUNCTION path_ok(p text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('mnist_ml.cpu_path', p, true);
	RETURN true;
EXCEPTION WHEN feature_not_supported THEN
	RETURN false;
END $$;
CREATE TABLE paths AS
SELECT p AS path, row_number() OVER (ORDER BY o) AS o
  FROM unnest(ARRAY['avx512', 'avxvnni', 'avx2', 'baseline']) WITH ORDINALITY AS a(p, o)
 WHERE path_ok(p);
RESET mnist_ml.cpu_path;
INSERT INTO mnist_models (name, hyperparameters, metrics, weights)
SELECT m.name || '_' || path, hyperparameters, metrics, weights
  FROM mnist_models m, paths WHERE m.name IN ('bench_digits', 'bench_fashion');

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

-- two table shapes: the bare (pixels, predicted), and the reference's MNIST table (mnist2sql's
-- id serial primary key, label, pixels) with the predicted column the trigger fills; per shape,
-- table 1 has no trigger, 2 the trivial one, 3 + o the classify trigger of path o's model
CREATE FUNCTION trivial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.predicted := 0;
	RETURN NEW;
END $$;
DO $$
DECLARE
	shape text;
	r record;
BEGIN
	FOREACH shape IN ARRAY ARRAY['bare', 'ref'] LOOP
		FOR t IN 1..2 LOOP
			EXECUTE format('CREATE TABLE %I (%s)', shape || t,
						   CASE shape WHEN 'bare' THEN 'pixels bytea, predicted smallint'
						   ELSE 'id serial PRIMARY KEY, label smallint, pixels bytea, predicted smallint' END);
		END LOOP;
		EXECUTE format('CREATE TRIGGER t BEFORE INSERT ON %I FOR EACH ROW EXECUTE FUNCTION trivial()',
					   shape || 2);
		FOR r IN SELECT path, o FROM paths LOOP
			EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL)', shape || 3 + r.o, shape || 1);
			EXECUTE format('CREATE TRIGGER t BEFORE INSERT ON %I FOR EACH ROW '
						   'EXECUTE FUNCTION mnist_classify(''pixels'', ''predicted'', %L)',
						   shape || 3 + r.o, 'bench_digits_' || r.path);
		END LOOP;
	END LOOP;
END $$;

-- per source: the baseline, mnist_predict_proba (auto path), then mnist_predict on each path
CREATE TEMP TABLE runs AS
SELECT src, t.wall, t.cpu, (SELECT count(*) FROM bench_predict.digits) AS n
  FROM unnest(ARRAY['digits', 'fashion']) AS src,
	   LATERAL best(ARRAY[format('SELECT sum(length(pixels)) FROM %I', src),
						  format('SELECT sum(array_length(mnist_predict_proba(pixels, %L), 1)) FROM %I',
								 'bench_' || src, src)] ||
					ARRAY(SELECT format('SELECT sum(mnist_predict(pixels, %L)) FROM %I',
										'bench_' || src || '_' || path, src) FROM paths ORDER BY o),
					ARRAY[NULL, 'RESET mnist_ml.cpu_path'] ||
					ARRAY(SELECT format('SET mnist_ml.cpu_path = %s', path) FROM paths ORDER BY o)) AS t;
RESET mnist_ml.cpu_path;
CREATE TEMP TABLE figures AS
SELECT src, path, o, n, wall[1] AS baseline_s, wall[o + 2] AS predict_s, wall[2] AS proba_s,
	   nullif(cpu[o + 2], 0) AS predict_cpu
  FROM runs, paths;
\set ECHO all
\pset footer off
SELECT src AS "10,000 rows of", path, n AS rows,
	   round(n / baseline_s) AS "length() rows/s",
	   round(n / predict_s) AS "mnist_predict rows/s",
	   round((predict_s / baseline_s)::numeric, 1) AS "predict/length time",
	   round(n / predict_cpu) AS "mnist_predict rows/CPU s",
	   CASE WHEN n / predict_s >= 100000 THEN 'met' ELSE 'MISSED' END AS "target >= 100,000 rows/s",
	   CASE WHEN path NOT IN ('avx2', 'avxvnni') THEN ''
	   WHEN n / predict_s >= CASE src WHEN 'digits' THEN 800000 ELSE 450000 END THEN 'met'
	   ELSE 'MISSED' END AS "AVX2 target (800k/450k)"
  FROM figures ORDER BY src, o;
SELECT src AS "10,000 rows of", round(n / proba_s) AS "mnist_predict_proba rows/s (auto path)"
  FROM runs JOIN figures USING (src, n) WHERE o = 1 ORDER BY src;
\set ECHO none
-- per shape: the plain insert, the trivial trigger, then the classify trigger on each path
CREATE TEMP TABLE inserts AS
SELECT shape, path, p.o, t.wall[1] AS plain_s, t.wall[2] AS plpgsql_s, t.wall[p.o + 2] AS classify_s,
	   nullif(t.cpu[1], 0) AS plain_cpu, nullif(t.cpu[2], 0) AS plpgsql_cpu, t.cpu[p.o + 2] AS classify_cpu
  FROM unnest(ARRAY['bare', 'ref']) WITH ORDINALITY AS s(shape, o),
	   LATERAL best(ARRAY(SELECT format('INSERT INTO %I (%s) SELECT %2$s FROM digits', shape || k,
										CASE shape WHEN 'bare' THEN 'pixels' ELSE 'label, pixels' END)
							FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL
								  (SELECT 3 + o FROM paths ORDER BY o)) AS k(k)),
					ARRAY(SELECT format('TRUNCATE %I', shape || k) || coalesce('; SET mnist_ml.cpu_path = ' || path, '')
							FROM (SELECT 1, NULL UNION ALL SELECT 2, NULL UNION ALL
								  (SELECT 3 + o, path FROM paths ORDER BY o)) AS k(k, path))) AS t,
	   paths p
 ORDER BY s.o, p.o;
RESET mnist_ml.cpu_path;
SELECT bool_and(predicted IS NOT DISTINCT FROM mnist_predict(pixels, 'bench_digits')) AS all_classified
  FROM (SELECT pixels, predicted FROM bare4 UNION ALL SELECT pixels, predicted FROM ref4) AS c \gset
\set ECHO all
SELECT CASE shape WHEN 'bare' THEN '(pixels, predicted)'
	   ELSE '(id serial PK, label, pixels, predicted)' END AS "10,000 rows into",
	   path, m.time,
	   round((m.plain * 1000)::numeric, 1) AS "plain insert ms",
	   round((m.plpgsql * 1000)::numeric, 1) AS "trivial plpgsql trigger ms",
	   round((m.classify * 1000)::numeric, 1) AS "classify trigger ms",
	   round((m.plpgsql / m.plain)::numeric, 2) AS "plpgsql/plain",
	   round((m.classify / m.plain)::numeric, 2) AS "classify/plain",
	   round(((m.classify - m.plain) / 10000 * 1e6)::numeric, 2) AS "classify us/row",
	   round((m.classify / m.plpgsql)::numeric, 2) AS "classify/plpgsql",
	   CASE WHEN m.classify / m.plain <= 1.5 THEN 'met' ELSE 'MISSED' END AS "target <= 1.5x",
	   CASE WHEN shape <> 'bare' OR path NOT IN ('avx2', 'avxvnni') THEN ''
	   WHEN m.classify / m.plpgsql <= 1.1 THEN 'met' ELSE 'MISSED' END AS "AVX2 target <= 1.1x plpgsql",
	   :'all_classified' AS "rows classified = mnist_predict"
  FROM inserts,
	   LATERAL (VALUES ('wall', plain_s, plpgsql_s, classify_s),
					   ('CPU', plain_cpu, plpgsql_cpu, classify_cpu)) AS m(time, plain, plpgsql, classify);
\set ECHO none
SQL

# ---- cold: new connections (the library preloaded, the model not in their cache)
# times_ms SQL...: psql's \timing, in ms, of each statement after a SELECT 1 in a new connection
# (serial plans unless a statement says otherwise: one backend's figures)
times_ms() {
	{
		echo 'SET max_parallel_workers_per_gather = 0;'
		echo 'SELECT 1;'
		echo '\timing on'
		printf '%s;\n' "$@"
	} | PGOPTIONS="-c search_path=bench_predict,public" \
		psql -X -q -v ON_ERROR_STOP=1 -o /dev/null | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tr '\n' ' '
	echo
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
first=() second=() floor=() scold=() swarm=() sfloor=()
one="SELECT mnist_predict(pixels, 'bench_digits') FROM digits LIMIT 1"
all="SELECT sum(mnist_predict(pixels, 'bench_digits')) FROM digits"
for ((i = 0; i < CONNS; i++)); do
	read -r a b < <(times_ms "$one" "$one")
	first+=("$a") second+=("$b")
	floor+=("$(times_ms "SELECT length(pixels) FROM digits LIMIT 1")")
	read -r a b < <(times_ms "$all" "$all")
	scold+=("$a") swarm+=("$b")
	sfloor+=("$(times_ms "SELECT sum(length(pixels)) FROM digits")")
done
m_first=$(echo "${first[*]}" | median) m_second=$(echo "${second[*]}" | median)
m_floor=$(echo "${floor[*]}" | median)
m_scold=$(echo "${scold[*]}" | median) m_swarm=$(echo "${swarm[*]}" | median)
m_sfloor=$(echo "${sfloor[*]}" | median)
rows=$(psql -X -qAt -c "SELECT count(*) FROM bench_predict.digits")
echo "cold vs warm, medians over $CONNS new connections (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '  %-62s %8.2f ms  (all: %s)\n' "first prediction in a new connection (target <= 2 ms)" "$m_first" "${first[*]}"
printf '  %-62s %8.2f ms\n' "the same statement again" "$m_second"
printf '  %-62s %8.2f ms\n' "floor: a new connection's first SELECT length(pixels) LIMIT 1" "$m_floor"
printf '  %-62s %8s\n' "target <= 2 ms" "$(awk -v f="$m_first" 'BEGIN { print (f <= 2) ? "met" : "MISSED" }')"
printf '  %-62s %8.0f rows/s  (%s ms)\n' "$rows rows scored as a new connection's first statement" \
	"$(awk -v n="$rows" -v t="$m_scold" 'BEGIN { print n / t * 1000 }')" "$m_scold"
printf '  %-62s %8.0f rows/s  (%s ms)\n' "the same statement again (warm)" \
	"$(awk -v n="$rows" -v t="$m_swarm" 'BEGIN { print n / t * 1000 }')" "$m_swarm"
printf '  %-62s %8.0f rows/s  (%s ms)\n' "floor: sum(length(pixels)) as a new connection's first statement" \
	"$(awk -v n="$rows" -v t="$m_sfloor" 'BEGIN { print n / t * 1000 }')" "$m_sfloor"

# rounds FIRST OFF ON STMT: in one new connection, FIRST, then REPS rounds of OFF, STMT, ON,
# STMT; prints the times of STMT after OFF, a |, then its times after ON
rounds() {
	local stmts=("$1") t i off=() on=()
	for ((i = 0; i < REPS; i++)); do
		stmts+=("$2" "$4" "$3" "$4")
	done
	read -r -a t < <(times_ms "${stmts[@]}")
	for ((i = 0; i < REPS; i++)); do
		off+=("${t[4 * i + 2]}") on+=("${t[4 * i + 4]}")
	done
	echo "${off[*]}|${on[*]}"
}

# ---- the 10,000-row sum with the planner's default plan (its workers load the model cold at
# every statement; this connection has it cached after the first) vs the serial plan
IFS='|' read -r serial dflt < <(rounds "$all" "SET max_parallel_workers_per_gather = 0" \
	"RESET max_parallel_workers_per_gather" "$all")
workers=$(echo "EXPLAIN (FORMAT JSON) $all" | PGOPTIONS="-c search_path=bench_predict,public" psql -X -qAt |
	sed -n 's/.*"Workers Planned": \([0-9]*\).*/\1/p' | head -n 1)
# the baseline: sum(length(pixels)) on one worker (a plan forced parallel) vs serial, the cost of
# a worker without a model
base="SELECT sum(length(pixels)) FROM digits"
IFS='|' read -r bserial bpar < <(rounds "SET parallel_setup_cost = 0" \
	"SET max_parallel_workers_per_gather = 0" "SET max_parallel_workers_per_gather = 1" "$base")
m_serial=$(echo "$serial" | median) m_dflt=$(echo "$dflt" | median)
m_bserial=$(echo "$bserial" | median) m_bpar=$(echo "$bpar" | median)
echo "$rows rows, $all, in a connection that has the model cached (medians of $REPS alternating rounds)"
printf '  %-62s %8.1f ms  (all: %s)\n' "serial plan (max_parallel_workers_per_gather = 0)" "$m_serial" "$serial"
printf '  %-62s %8.1f ms  (all: %s)\n' "default plan (workers planned: ${workers:-0}, each loads the model)" "$m_dflt" "$dflt"
printf '  %-62s %8.2fx\n' "default plan speed-up over serial" "$(awk -v a="$m_serial" -v b="$m_dflt" 'BEGIN { print a / b }')"
printf '  %-62s %8.1f ms\n' "baseline $base, serial" "$m_bserial"
printf '  %-62s %8.1f ms\n' "the same, 1 worker (plan forced: a worker without a model)" "$m_bpar"

psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA bench_predict CASCADE;
DELETE FROM mnist_models WHERE name ~ '^bench_(digits|fashion)';
SQL

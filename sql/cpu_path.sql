-- mnist_ml.cpu_path: every CPU path this machine has trains and predicts; avx512 and avx2 give
-- bit-identical models, baseline the same classes; a path the CPU lacks is refused (0A000);
-- superusers only.  The output is the same whichever paths the machine has.
\set schema cpu_path
\i sql/common/setup.psql

SHOW mnist_ml.cpu_path;
SELECT try('SET mnist_ml.cpu_path = sse');
SET mnist_ml.cpu_path = baseline;
SHOW mnist_ml.cpu_path;
RESET mnist_ml.cpu_path;

-- a non-superuser cannot choose a path
DROP ROLE IF EXISTS regress_mnist_cpu;
CREATE ROLE regress_mnist_cpu;
GRANT USAGE ON SCHEMA cpu_path TO regress_mnist_cpu;
SET ROLE regress_mnist_cpu;
SELECT try('SET mnist_ml.cpu_path = baseline');
RESET ROLE;
REVOKE USAGE ON SCHEMA cpu_path FROM regress_mnist_cpu;
DROP ROLE regress_mnist_cpu;

-- the same training on each path this CPU has (a path it lacks raises 0A000: skipped)
CREATE TABLE runs (path text, id bigint);
DO $$
DECLARE
	p text;
BEGIN
	FOREACH p IN ARRAY ARRAY['baseline', 'avx2', 'avx512'] LOOP
		BEGIN
			PERFORM set_config('mnist_ml.cpu_path', p, true);
		EXCEPTION WHEN feature_not_supported THEN
			CONTINUE;
		END;
		INSERT INTO runs
		VALUES (p, mnist_train('mnist_train', 'cpu_path_' || p, epochs => 2, hidden_units => 32, seed => 7));
	END LOOP;
END $$;
SHOW mnist_ml.cpu_path;
SELECT bool_or(path = 'baseline') AS baseline_ran FROM runs;

-- avx512 and avx2 (FMA) give the same bits; baseline a model that classifies alike
SELECT count(DISTINCT weights) <= 1 AS fma_paths_identical
  FROM runs JOIN mnist_models m USING (id) WHERE path <> 'baseline';
SELECT bool_and(agree >= 0.99) AS paths_agree_with_baseline
  FROM (SELECT avg((mnist_predict(t.pixels, 'cpu_path_' || r.path) =
					mnist_predict(t.pixels, 'cpu_path_baseline'))::int) AS agree
		  FROM runs r, mnist_train t GROUP BY r.path) a;

DELETE FROM mnist_models WHERE name LIKE 'cpu\_path\_%';
DROP SCHEMA cpu_path CASCADE;

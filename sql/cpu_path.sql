-- mnist_ml.cpu_path: every CPU path this machine has trains and predicts; avx512, avxvnni and
-- avx2 give bit-identical models, baseline the same classes; each path's prediction screen gives
-- the float network's class for every digits and Fashion-MNIST test image; a path the CPU lacks
-- is refused (0A000); superusers only.  The output is the same whichever paths the machine has.
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

-- runs stmt, format()ted with the path as %1$L, on each path this CPU has (a path it lacks
-- raises 0A000: skipped), for the rest of the transaction
CREATE FUNCTION on_each_path(stmt text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	p text;
BEGIN
	FOREACH p IN ARRAY ARRAY['baseline', 'avx2', 'avxvnni', 'avx512'] LOOP
		BEGIN
			PERFORM set_config('mnist_ml.cpu_path', p, true);
		EXCEPTION WHEN feature_not_supported THEN
			CONTINUE;
		END;
		EXECUTE format(stmt, p);
	END LOOP;
END $$;

-- the same training on each path
CREATE TABLE runs (path text, id bigint);
SELECT on_each_path($$INSERT INTO runs VALUES (%1$L, mnist_train('mnist_train', 'cpu_path_' || %1$L,
							epochs => 2, hidden_units => 32, seed => 7))$$);
SHOW mnist_ml.cpu_path;
SELECT bool_or(path = 'baseline') AS baseline_ran FROM runs;

-- avx512, avxvnni and avx2 (FMA) give the same bits; baseline a model that classifies alike
SELECT count(DISTINCT weights) <= 1 AS fma_paths_identical
  FROM runs JOIN mnist_models m USING (id) WHERE path <> 'baseline';
SELECT bool_and(agree >= 0.99) AS paths_agree_with_baseline
  FROM (SELECT avg((mnist_predict(t.pixels, 'cpu_path_' || r.path) =
					mnist_predict(t.pixels, 'cpu_path_baseline'))::int) AS agree
		  FROM runs r, mnist_train t GROUP BY r.path) a;

-- Each path's screen (avx512: AVX-512 VNNI, avxvnni: AVX-VNNI, avx2: vpmaddwd; baseline has
-- none) against the float network, image by image, over the digits and Fashion-MNIST test sets:
-- the class mnist_predict gives (by the screen once the cached model has classified 1,000
-- images; the screen is built again for each path) has the largest of mnist_predict_proba's
-- probabilities (the float network's, always).
\set ECHO none
\set f :data '/digits/mnist_test.sql'
\i :f
ALTER TABLE mnist_test RENAME TO digits_test;
\set f :data '/fashion/mnist_test.sql'
\i :f
ALTER TABLE mnist_test RENAME TO fashion_test;
\set ECHO all
RESET mnist_ml.cpu_path;
SELECT mnist_train('mnist_train', 'cpu_path_digits', epochs => 1, seed => 3) > 0 AS trained;
SELECT mnist_train('fashion_test', 'cpu_path_fashion', epochs => 1, seed => 3) > 0 AS trained;
CREATE TABLE screened (path text, source text, images bigint, float_class bigint);
SELECT on_each_path($$
	INSERT INTO screened
	SELECT %1$L, source, count(*),
		   count(*) FILTER (WHERE proba[class + 1] = (SELECT max(x) FROM unnest(proba) AS x))
	  FROM (SELECT 'digits' AS source, mnist_predict(pixels, 'cpu_path_digits') AS class,
				   mnist_predict_proba(pixels, 'cpu_path_digits') AS proba
			  FROM digits_test
			UNION ALL
			SELECT 'fashion', mnist_predict(pixels, 'cpu_path_fashion'),
				   mnist_predict_proba(pixels, 'cpu_path_fashion')
			  FROM fashion_test) AS c
	 GROUP BY source$$);
SELECT source, min(images) AS images, bool_and(float_class = images) AS every_class_the_float_networks
  FROM screened GROUP BY source ORDER BY source;

DELETE FROM mnist_models WHERE name LIKE 'cpu\_path\_%';
DROP SCHEMA cpu_path CASCADE;

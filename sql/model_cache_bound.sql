-- The per-backend model cache is bounded by mnist_ml.model_cache_size (least recently used
-- models dropped first), but never drops a model a running query holds; inside a transaction
-- too, a model no query holds any more is dropped.
\set schema model_cache_bound
\i sql/common/setup.psql
CREATE TABLE src AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 300;
SHOW mnist_ml.model_cache_size;

-- three models of one shape (a model freed too early would have its memory reused by the
-- next one decoded) and each one's classes, predicted alone
SELECT mnist_train('src', 'bound_a', epochs => 1, hidden_units => 64, seed => 1) > 0 AS trained_a;
SELECT mnist_train('src', 'bound_b', epochs => 1, hidden_units => 64, seed => 2) > 0 AS trained_b;
SELECT mnist_train('src', 'bound_c', epochs => 1, hidden_units => 64, seed => 3) > 0 AS trained_c;
CREATE TABLE alone AS SELECT id, mnist_predict(pixels, 'bound_a') AS a FROM src;
ALTER TABLE alone ADD b smallint, ADD c smallint;
UPDATE alone SET b = mnist_predict(pixels, 'bound_b') FROM src WHERE src.id = alone.id;
UPDATE alone SET c = mnist_predict(pixels, 'bound_c') FROM src WHERE src.id = alone.id;
SELECT count(*) FILTER (WHERE a <> b) > 0 AND count(*) FILTER (WHERE a <> c) > 0 AND
       count(*) FILTER (WHERE b <> c) > 0 AS models_differ FROM alone;
SELECT name, hidden_units, bytes > 64 * 785 * 4 AS holds_parameters FROM mnist_model_cache() ORDER BY name;
SELECT max(bytes) AS one_model FROM mnist_model_cache() \gset

-- a bound of one model: a query using three, from three call sites, or two from one
-- alternating call site, keeps them until it ends and gets each model's classes
SELECT set_config('mnist_ml.model_cache_size', ceil(:one_model / 1024.0)::int || 'kB', false) IS NOT NULL AS bound_set;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE mnist_predict(s.pixels, 'bound_a') = x.a) AS a_right,
       count(*) FILTER (WHERE mnist_predict(s.pixels, 'bound_b') = x.b) AS b_right,
       count(*) FILTER (WHERE mnist_predict(s.pixels, 'bound_c') = x.c) AS c_right
  FROM src s JOIN alone x USING (id);
SELECT count(*) AS cached FROM mnist_model_cache();
SELECT count(*) AS rows,
       count(*) FILTER (WHERE mnist_predict(s.pixels, CASE WHEN s.id % 2 = 0 THEN 'bound_a' ELSE 'bound_b' END) =
                              CASE WHEN s.id % 2 = 0 THEN x.a ELSE x.b END) AS alternating_right
  FROM src s JOIN alone x USING (id);
-- in one transaction the model of the query before is not held any more: the bound holds
BEGIN;
SELECT count(*) FILTER (WHERE mnist_predict(pixels, 'bound_a') IS NOT NULL) AS a FROM src;
SELECT count(*) FILTER (WHERE mnist_predict(pixels, 'bound_b') IS NOT NULL) AS b FROM src;
SELECT name FROM mnist_model_cache() ORDER BY name;
COMMIT;
SELECT name FROM mnist_model_cache();
-- after an error too
SELECT mnist_predict(pixels, 'bound_a') / 0 FROM src LIMIT 1;
SELECT name FROM mnist_model_cache();

-- 1,000 model names, one statement (transaction) each, with a bound of 4 models: the cache
-- never holds more than the bound, also while a statement uses a model
SET mnist_ml.model_cache_size = '64MB';
SELECT mnist_train('src', 'bound_small', epochs => 1, hidden_units => 4, seed => 3) AS small_id \gset
INSERT INTO mnist_models (name, hyperparameters, metrics, weights, trained_by)
SELECT 'bound_' || i, hyperparameters, metrics, weights, trained_by
  FROM mnist_models, generate_series(1, 1000) i WHERE id = :small_id;
SELECT mnist_predict(pixels, 'bound_small') IS NOT NULL AS predicted FROM src LIMIT 1;
SELECT bytes AS small_model FROM mnist_model_cache() WHERE name = 'bound_small' \gset
SELECT set_config('mnist_ml.model_cache_size', ceil(4 * :small_model / 1024.0)::int || 'kB', false) IS NOT NULL AS bound_set;
CREATE TABLE seen (name text, class smallint, cached int, bytes bigint);
CREATE TABLE probe AS SELECT pixels FROM src ORDER BY id LIMIT 1;
SELECT format('INSERT INTO seen SELECT %L, mnist_predict(pixels, %L), (SELECT count(*) FROM mnist_model_cache()), '
              '(SELECT sum(bytes) FROM mnist_model_cache()) FROM probe', 'bound_' || i, 'bound_' || i)
  FROM generate_series(1, 1000) i
\set ECHO none
\o /dev/null
\gexec
\o
\set ECHO all
SELECT count(*) AS statements, count(DISTINCT class) AS classes, max(cached) AS most_cached,
       max(bytes) <= 4 * :small_model AS within_bound
  FROM seen;
SELECT count(*) AS cached, sum(bytes) <= 4 * :small_model AS within_bound
  FROM mnist_model_cache();
SELECT name FROM mnist_model_cache();

-- the same in one transaction: a DO block predicting with and evaluating 300 models (a
-- hyperparameter search) keeps no more than the bound
CREATE TABLE seen_in_block (cached int, bytes bigint);
CREATE TABLE labelled AS SELECT pixels, label FROM src ORDER BY id LIMIT 1;
DO $$
BEGIN
	FOR i IN 1..300 LOOP
		PERFORM mnist_predict(pixels, 'bound_' || i) FROM probe;
		PERFORM * FROM mnist_evaluate('labelled', 'bound_' || (i + 300));
		INSERT INTO seen_in_block SELECT count(*), sum(bytes) FROM mnist_model_cache();
	END LOOP;
END $$;
SELECT count(*) AS steps, max(cached) AS most_cached, max(bytes) <= 4 * :small_model AS within_bound
  FROM seen_in_block;
RESET mnist_ml.model_cache_size;

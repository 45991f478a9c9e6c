-- Training threads (mnist_ml.train_threads): the same seed gives the same model, bit for bit,
-- with 1, 2 or 3 threads, in memory and spilled, for small and large batches (a batch of
-- 1000 is split in rounds between interrupt checks).
\set schema train_threads
\i sql/common/setup.psql
SHOW mnist_ml.train_threads;
SELECT try($$SET mnist_ml.train_threads = 0$$);
SELECT try($$SET mnist_ml.train_threads = 9$$);

CREATE TABLE runs (threads int, memory text, batch int, id bigint);
CREATE FUNCTION train(threads int, memory text, batch int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('mnist_ml.train_threads', threads::text, true);
	PERFORM set_config('mnist_ml.train_memory', memory, true);
	INSERT INTO runs SELECT threads, memory, batch,
		mnist_train('mnist_train', 'train_threads', epochs => 2, batch_size => batch,
					hidden_units => 100, seed => 3);
END $$;
SELECT count(train(t, m, b)) AS trainings
  FROM generate_series(1, 3) t, (VALUES ('-1'), ('1200kB')) m(m), (VALUES (64), (1000)) b(b);
SHOW mnist_ml.train_threads;
-- one model per memory and batch; they learned
SELECT r.memory, r.batch, count(*) AS runs, count(DISTINCT m.weights) AS models,
       min((m.metrics->>'accuracy')::float8) > 0.5 AS learned
  FROM runs r JOIN mnist_models m ON m.id = r.id GROUP BY 1, 2 ORDER BY 1, 2;

-- continuing a model (its Adam state goes to the threads and back into the stored model)
CREATE FUNCTION train_more(threads int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('mnist_ml.train_threads', threads::text, true);
	RETURN mnist_train('mnist_train', 'train_threads_more', epochs => 1, hidden_units => 100,
					   seed => 4, init_model => 'train_threads');
END $$;
CREATE TABLE more AS SELECT t AS threads, train_more(t) AS id FROM generate_series(1, 3) t;
SELECT count(DISTINCT m.weights) AS models, count(*) AS runs
  FROM more JOIN mnist_models m USING (id);

DELETE FROM mnist_models WHERE name IN ('train_threads', 'train_threads_more');
DROP SCHEMA train_threads CASCADE;

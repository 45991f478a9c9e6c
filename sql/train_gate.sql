-- Gated training: validation and deploy ('always', 'never', 'if_better') on mnist_train; the
-- validation metrics of the new and the deployed model stored with the model, the decision
-- recorded in mnist_deployments; a worse model (trained on wrong labels) is kept out.
\set schema train_gate
\i sql/common/setup.psql
CREATE TABLE src AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 1000;
-- the same images with labels that have nothing to do with them
CREATE TABLE wrong AS SELECT id, pixels, ((id * 7 + 3) % 10)::smallint AS label FROM src;
CREATE TABLE val AS SELECT id, pixels, label FROM mnist_train ORDER BY id DESC LIMIT 300;
CREATE TABLE val_bad AS SELECT * FROM val;
UPDATE val_bad SET label = 11 WHERE id = (SELECT max(id) FROM val_bad);
CREATE TABLE val_empty AS SELECT * FROM val WHERE false;
-- reasons and decisions without the figures, which depend on the build
CREATE FUNCTION masked(t text) RETURNS text LANGUAGE sql AS
	$$ SELECT regexp_replace(regexp_replace(t, '[01]\.[0-9]{4}', 'A', 'g'), 'model [0-9]+', 'model N', 'g') $$;

-- bad values are errors before any work (nothing stored)
SELECT try($$SELECT mnist_train('src', 'gate', deploy => 'sometimes')$$);
SELECT try($$SELECT mnist_train('src', 'gate', deploy => NULL)$$);
SELECT try($$SELECT mnist_train('src', 'gate', deploy => 'if_better')$$);
SELECT try($$SELECT mnist_train('src', 'gate', validation => 'val_bad')$$);
SELECT try($$SELECT mnist_train('src', 'gate', validation => 'val_empty')$$);
SELECT try($$SELECT mnist_train('src', 'gate', validation => 'no_such_table')$$);
SELECT count(*) AS stored FROM mnist_models WHERE name = 'gate';

SET client_min_messages = warning;
-- a first model: nothing deployed yet, the gate lets it in
SELECT mnist_train('src', 'gate', epochs => 3, seed => 1, validation => 'val', deploy => 'if_better') AS good \gset
SELECT masked(metrics->'deploy'->>'reason') AS reason, metrics->'deploy'->'deployed' AS deployed,
       metrics->'validation'->'rows' AS validation_rows,
       (metrics->'validation'->>'accuracy')::float8 > 0.7 AS good_accuracy,
       metrics->'validation' ? 'deployed_accuracy' AS compared
  FROM mnist_models WHERE id = :good;
-- the validation figures are mnist_evaluate's on the same rows
SELECT (metrics->'validation'->>'accuracy')::float8 = e.accuracy AS same_accuracy,
       abs((metrics->'validation'->>'loss')::float8 - e.loss) < 1e-9 AS same_loss
  FROM mnist_models, mnist_evaluate('val', :good::bigint) e WHERE id = :good;

-- a model trained on wrong labels is stored but not deployed
SELECT mnist_train('wrong', 'gate', epochs => 3, seed => 1, validation => 'val', deploy => 'if_better') AS worse \gset
SELECT masked(metrics->'deploy'->>'reason') AS reason, metrics->'deploy'->'deployed' AS deployed,
       (metrics->'validation'->>'accuracy')::float8 < 0.3 AS poor_accuracy,
       (metrics->'validation'->>'deployed_model_id')::bigint = :good AS compared_with_good,
       (metrics->'validation'->>'deployed_accuracy')::float8 = (SELECT accuracy FROM mnist_evaluate('val', :good::bigint)) AS deployed_figure
  FROM mnist_models WHERE id = :worse;
SELECT (SELECT loss FROM mnist_evaluate('val', 'gate')) = (SELECT loss FROM mnist_evaluate('val', :good::bigint)) AS good_still_served;

-- 'always' deploys it anyway, with the figures recorded; 'never' measures without deploying
SELECT mnist_train('wrong', 'gate', epochs => 1, seed => 2, validation => 'val', deploy => 'never') AS never \gset
SELECT masked(metrics->'deploy'->>'reason') AS reason, metrics->'deploy'->'deployed' AS deployed
  FROM mnist_models WHERE id = :never;
SELECT mnist_train('wrong', 'gate', epochs => 1, seed => 3, validation => 'val') AS forced \gset
SELECT (SELECT loss FROM mnist_evaluate('val', 'gate')) = (SELECT loss FROM mnist_evaluate('val', :forced::bigint)) AS forced_served;

-- a better model passes the gate
SELECT mnist_train('src', 'gate', epochs => 3, seed => 4, validation => 'val', deploy => 'if_better') AS better \gset
SELECT (SELECT loss FROM mnist_evaluate('val', 'gate')) = (SELECT loss FROM mnist_evaluate('val', :better::bigint)) AS better_served;
RESET client_min_messages;

-- the history of decisions
SELECT CASE model_id WHEN :good THEN 'good' WHEN :forced THEN 'forced' WHEN :better THEN 'better' END AS model,
       masked(reason) AS reason
  FROM mnist_deployments WHERE name = 'gate' ORDER BY id;
-- the refused and the never-deployed model were not deployed
SELECT count(*) AS refused_deployments FROM mnist_deployments WHERE model_id IN (:worse, :never);
-- and a rollback goes back to the one the better model replaced
SELECT mnist_rollback('gate') = :forced AS rolled_back;

DROP SCHEMA train_gate CASCADE;

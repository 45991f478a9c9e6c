-- What models reveal, and keeping them private: the functions read mnist_models and
-- mnist_deployments as their owner, so an administrator may hide the store from roles
-- (column privileges, or row-level security per owning role) while they still predict,
-- evaluate, deploy and train with the models they are allowed to use.
\set schema access_private_models
\i sql/common/setup.psql
-- (left over by an interrupted run?)
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_priv_owner;
DROP ROLE IF EXISTS regress_priv_user;
RESET client_min_messages;
CREATE ROLE regress_priv_owner;
CREATE ROLE regress_priv_user;
GRANT USAGE ON SCHEMA access_private_models TO regress_priv_owner, regress_priv_user;
CREATE TABLE patients AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 300;
GRANT SELECT ON patients TO regress_priv_owner;
CREATE TABLE public_scans AS SELECT id, pixels, label FROM mnist_train ORDER BY id DESC LIMIT 100;
GRANT SELECT ON public_scans TO regress_priv_owner, regress_priv_user;

-- by default every role reads every model's row: its source table, row count, figures, weights
SET ROLE regress_priv_owner;
SELECT mnist_train('patients', 'priv_diagnosis', epochs => 1) AS m1 \gset
SET ROLE regress_priv_user;
SELECT name, metrics->'source'->>'table' AS source, metrics->'rows' AS rows,
       octet_length(weights) > 0 AS weights_readable, trained_by
  FROM mnist_models WHERE name = 'priv_diagnosis';
RESET ROLE;

-- 1. column privileges: the model's figures, source and weights hidden from everyone
REVOKE SELECT ON mnist_models FROM PUBLIC;
GRANT SELECT (id, name, created_at, trained_by) ON mnist_models TO PUBLIC;
REVOKE SELECT ON mnist_deployments FROM PUBLIC;
GRANT SELECT (id, name, model_id, replaced_model_id, deployed_at, deployed_by, rollback_to)
	ON mnist_deployments TO PUBLIC;
SET ROLE regress_priv_user;
SELECT try($$SELECT metrics FROM mnist_models$$);
SELECT try($$SELECT weights FROM mnist_models$$);
SELECT try($$SELECT hyperparameters FROM mnist_models$$);
SELECT try($$SELECT reason FROM mnist_deployments$$);
SELECT name, trained_by FROM mnist_models WHERE name = 'priv_diagnosis';
-- but it predicts and evaluates with the model, by name and by id
SELECT count(mnist_predict(pixels, 'priv_diagnosis')) AS predicted FROM public_scans;
SELECT count(mnist_predict_proba(pixels, 'priv_diagnosis')) AS probabilities FROM public_scans;
SELECT rows FROM mnist_evaluate('public_scans', 'priv_diagnosis');
SELECT rows FROM mnist_evaluate('public_scans', :m1);
-- and still cannot take over the name
SELECT try($$SELECT mnist_train('public_scans', 'priv_diagnosis', epochs => 1)$$);
SELECT try($$SELECT mnist_deploy('priv_diagnosis')$$);
-- the owner trains, deploys and rolls back as before
SET ROLE regress_priv_owner;
SET client_min_messages = warning;
SELECT mnist_train('patients', 'priv_diagnosis', epochs => 1, init_model => 'priv_diagnosis',
                   validation => 'public_scans', deploy => 'never') > :m1 AS stored;
RESET client_min_messages;
SELECT mnist_deploy('priv_diagnosis') > :m1 AS deployed;
SELECT mnist_rollback('priv_diagnosis') = :m1 AS rolled_back;
RESET ROLE;
REVOKE SELECT (id, name, created_at, trained_by) ON mnist_models FROM PUBLIC;
GRANT SELECT ON mnist_models TO PUBLIC;
REVOKE SELECT (id, name, model_id, replaced_model_id, deployed_at, deployed_by, rollback_to)
	ON mnist_deployments FROM PUBLIC;
GRANT SELECT ON mnist_deployments TO PUBLIC;

-- 2. row-level security: each role sees the models of the roles it belongs to
ALTER TABLE mnist_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY mnist_models_own ON mnist_models FOR SELECT USING (pg_has_role(trained_by, 'MEMBER'));
SET ROLE regress_priv_user;
SELECT count(*) AS visible FROM mnist_models WHERE name = 'priv_diagnosis';
SELECT count(mnist_predict(pixels, 'priv_diagnosis')) AS predicted FROM public_scans;
SELECT mnist_train('public_scans', 'priv_user_model', epochs => 1) > 0 AS trained;
SELECT count(*) AS own_visible FROM mnist_models WHERE name = 'priv_user_model';
SET ROLE regress_priv_owner;
SELECT count(*) AS owner_visible FROM mnist_models WHERE name = 'priv_diagnosis';
SELECT count(*) AS other_visible FROM mnist_models WHERE name = 'priv_user_model';
SELECT mnist_deploy('priv_diagnosis', :m1) = :m1 AS deployed;
RESET ROLE;
DROP POLICY mnist_models_own ON mnist_models;
ALTER TABLE mnist_models DISABLE ROW LEVEL SECURITY;

-- 3. without EXECUTE on the functions, a role cannot use any model
REVOKE EXECUTE ON FUNCTION mnist_predict(bytea, text) FROM PUBLIC;
SET ROLE regress_priv_user;
SELECT try($$SELECT mnist_predict(pixels, 'priv_diagnosis') FROM public_scans$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION mnist_predict(bytea, text) TO PUBLIC;

DELETE FROM mnist_models WHERE name LIKE 'priv\_%';
DELETE FROM mnist_deployments WHERE name LIKE 'priv\_%';
DROP SCHEMA access_private_models CASCADE;
DROP ROLE regress_priv_owner;
DROP ROLE regress_priv_user;

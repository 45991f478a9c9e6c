-- Deployments: mnist_deploy, mnist_rollback (several steps), the history, a name served by its
-- deployed model everywhere, another session's deploy seen at the next statement, ownership,
-- evaluation of a stored model by id.
\set schema deployments
\i sql/common/setup.psql
-- (left over by an interrupted run?)
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_dep_other;
RESET client_min_messages;
CREATE TABLE src AS SELECT pixels, label FROM mnist_train ORDER BY id LIMIT 500;
CREATE TABLE probe AS SELECT pixels, label FROM mnist_train ORDER BY id DESC LIMIT 200;
\setenv PGDATABASE :DBNAME
\setenv PGUSER :USER

-- three models of a name; each store deploys it
SELECT mnist_train('src', 'dep', epochs => 1, seed => 1) AS m1 \gset
SELECT mnist_train('src', 'dep', epochs => 1, seed => 2) AS m2 \gset
SELECT mnist_train('src', 'dep', epochs => 1, seed => 3) AS m3 \gset
CREATE TABLE ids (label text, id bigint);
INSERT INTO ids VALUES ('m1', :m1), ('m2', :m2), ('m3', :m3);
-- which stored model serves 'dep' (evaluated by id, deployed or not, against by name)
CREATE FUNCTION served() RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(i.label, ',') FROM ids i JOIN mnist_models m USING (id),
	       LATERAL mnist_evaluate('probe', i.id) e
	 WHERE e.loss = (SELECT loss FROM mnist_evaluate('probe', 'dep')) $$;
CREATE FUNCTION history() RETURNS TABLE (model text, replaced text, reason text, by_me boolean)
LANGUAGE sql AS $$
	SELECT (SELECT label FROM ids WHERE id = d.model_id), (SELECT label FROM ids WHERE id = d.replaced_model_id),
	       d.reason, d.deployed_by = current_user::regrole
	  FROM mnist_deployments d WHERE d.name = 'dep' ORDER BY d.id $$;
SELECT served();
SELECT * FROM history();

-- deploy an older model, then roll back step by step through the history
SELECT mnist_deploy('dep', :m1) = :m1 AS deployed_m1;
SELECT served();
SELECT mnist_rollback('dep') = :m3 AS back_to_m3, served();
SELECT mnist_rollback('dep') = :m2 AS back_to_m2, served();
SELECT mnist_rollback('dep') = :m1 AS back_to_m1, served();
SELECT regexp_replace(try($$SELECT mnist_rollback('dep')$$), '[0-9]+ is', 'N is') AS nothing_earlier;
SELECT served();
SELECT * FROM history();
-- NULL deploys the newest
SELECT mnist_deploy('dep') = :m3 AS newest, served();

-- errors
SELECT try($$SELECT mnist_deploy('no_such_model')$$);
SELECT try($$SELECT mnist_rollback('no_such_model')$$);
SELECT replace(try(format('SELECT mnist_deploy(%L, %s)', 'no_such_model', :m1)), 'model id ' || :'m1', 'model id m1');
SELECT try($$SELECT mnist_deploy('dep', -1)$$);
SELECT try($$SELECT mnist_deploy(NULL)$$);
SELECT try($$SELECT mnist_deploy('')$$);
SELECT try($$SELECT * FROM mnist_evaluate('probe', -1::bigint)$$);
BEGIN READ ONLY;
SELECT try($$SELECT mnist_deploy('dep')$$);
ROLLBACK;
SELECT mnist_rollback(NULL) IS NULL AS strict;

-- a model stored with deploy => 'never' is not served (a NOTICE says so)
SET client_min_messages = warning;
SELECT mnist_train('src', 'dep', epochs => 1, seed => 4, deploy => 'never') AS m4 \gset
INSERT INTO ids VALUES ('m4', :m4);
SELECT served(), metrics->'deploy' AS decision FROM mnist_models WHERE id = :m4;
SELECT count(*) AS deployments_of_m4 FROM mnist_deployments WHERE model_id = :m4;
-- evaluation by id of the candidate; the confusion matrix by id agrees with it
SELECT (SELECT rows FROM mnist_evaluate('probe', :m4::bigint)) AS rows,
       (SELECT sum(count) FILTER (WHERE label = predicted)::float8 / sum(count) FROM mnist_confusion_matrix('probe', :m4::bigint))
     = (SELECT accuracy FROM mnist_evaluate('probe', :m4::bigint)) AS matrix_agrees;

-- init_model continues from the deployed model, not the newest
SELECT mnist_train('src', 'dep_child', epochs => 1, init_model => 'dep', deploy => 'never') AS child \gset
RESET client_min_messages;
SELECT (metrics->>'init_model_id')::bigint = :m3 AS from_deployed FROM mnist_models WHERE id = :child;

-- the classify trigger and mnist_predict serve the deployed model
CREATE TABLE incoming (pixels bytea, predicted smallint);
CREATE TRIGGER classify BEFORE INSERT ON incoming
	FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'dep');
SELECT mnist_deploy('dep', :m4) = :m4 AS deployed_m4;
INSERT INTO incoming SELECT pixels FROM probe;
SELECT bool_and(predicted = mnist_predict(pixels, 'dep')) AS trigger_agrees FROM incoming;
SELECT mnist_predict_proba(pixels, 'dep')::text AS p4 FROM probe LIMIT 1 \gset

-- another session deploys or rolls back: this session serves it from its next statement
\! psql -X -qAt -c "SELECT mnist_rollback('dep') > 0 AS other_session_rolled_back"
SELECT mnist_predict_proba(pixels, 'dep')::text <> :'p4' AS next_statement_sees_rollback, served() FROM probe LIMIT 1;
TRUNCATE incoming;
INSERT INTO incoming SELECT pixels FROM probe;
SELECT bool_and(predicted = mnist_predict(pixels, 'dep')) AS trigger_follows FROM incoming;
\! psql -X -qAt -c "SELECT mnist_deploy('dep', (SELECT max(id) FROM mnist_models WHERE name = 'dep' AND metrics->'deploy'->>'mode' = 'never')) > 0 AS other_session_deployed"
SELECT mnist_predict_proba(pixels, 'dep')::text = :'p4' AS next_statement_sees_deploy, served() FROM probe LIMIT 1;

-- a deployed model deleted since: the previous deployment whose model exists serves the name
DELETE FROM mnist_models WHERE id = :m4;
SELECT served();

-- ownership: only the role owning a name deploys or rolls it back; nobody writes directly
CREATE ROLE regress_dep_other;
GRANT USAGE ON SCHEMA deployments TO regress_dep_other;
GRANT SELECT ON probe TO regress_dep_other;
SET ROLE regress_dep_other;
SELECT count(*) > 0 AS can_read FROM mnist_deployments WHERE name = 'dep';
SELECT try($$SELECT mnist_deploy('dep')$$);
SELECT try($$SELECT mnist_rollback('dep')$$);
-- the hint says what only the owner may do
SELECT mnist_deploy('dep');
SELECT try($$INSERT INTO mnist_deployments (name, model_id, deployed_by, reason) VALUES ('dep', 1, current_user::regrole, 'x')$$);
SELECT try($$UPDATE mnist_deployments SET model_id = 1$$);
SELECT try($$DELETE FROM mnist_deployments$$);
SELECT try($$TRUNCATE mnist_deployments$$);
-- but may evaluate any stored model
SELECT rows FROM mnist_evaluate('probe', :m1::bigint);
RESET ROLE;
DROP OWNED BY regress_dep_other;
DROP ROLE regress_dep_other;

-- every deployed model of a name deleted: no model serves it, not even one stored with
-- deploy => 'never', and mnist_rollback says what happened; deploying a model serves it again
SET client_min_messages = warning;
SELECT mnist_train('src', 'orph', epochs => 1, seed => 5) AS oa \gset
SELECT mnist_train('src', 'orph', epochs => 1, seed => 6, deploy => 'never') AS ob \gset
RESET client_min_messages;
DELETE FROM mnist_models WHERE id = :oa;
SELECT try($$SELECT mnist_predict(pixels, 'orph') FROM probe$$);
SELECT try($$SELECT mnist_rollback('orph')$$);
SELECT mnist_deploy('orph', :ob) = :ob AS deployed_ob;
SELECT count(mnist_predict(pixels, 'orph')) AS served_again FROM probe;

-- the history is dumped with the models
SELECT c::regclass AS dumped FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'mnist_ml' ORDER BY 1;

DROP SCHEMA deployments CASCADE;

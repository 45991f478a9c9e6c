-- search_path: no function or trigger of ours runs an object of another role through
-- search_path.  A role without privileges owns a schema "evil" of operators (=, <>) and
-- functions (now, clock_timestamp) that record who ran them, and a temporary mnist_models;
-- a superuser, and the role itself, then train, predict, evaluate, deploy, roll back, classify
-- and start online learning with that schema first.  Nothing of "evil" may run: our queries
-- name pg_catalog's operators and functions and the extension's tables.
\set schema access_search_path
\i sql/common/setup.psql
-- (left over by an interrupted run?)
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS evil CASCADE;
DROP ROLE IF EXISTS regress_access_attacker;
RESET client_min_messages;
CREATE ROLE regress_access_attacker;
CREATE SCHEMA evil AUTHORIZATION regress_access_attacker;
GRANT USAGE ON SCHEMA access_search_path TO regress_access_attacker;
CREATE TABLE src AS SELECT pixels, label FROM mnist_train ORDER BY id LIMIT 300;
GRANT SELECT ON src TO regress_access_attacker;
CREATE TABLE incoming (pixels bytea, predicted smallint);

SET ROLE regress_access_attacker;
CREATE TABLE evil.seen (who name, what text);
GRANT INSERT ON evil.seen TO PUBLIC;
CREATE FUNCTION evil.record(what text) RETURNS void LANGUAGE sql
	AS $$ INSERT INTO evil.seen VALUES (current_user, what) $$;
CREATE FUNCTION evil.text_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN PERFORM evil.record('text = text'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION evil.text_ne(a text, b text) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN PERFORM evil.record('text <> text'); RETURN a OPERATOR(pg_catalog.<>) b; END $$;
CREATE FUNCTION evil.int8_eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN PERFORM evil.record('bigint = bigint'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION evil.int84_eq(a bigint, b integer) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN PERFORM evil.record('bigint = integer'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_ne);
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8_eq);
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = evil.int84_eq);
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql
	AS $$ BEGIN PERFORM evil.record('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql
	AS $$ BEGIN PERFORM evil.record('clock_timestamp()'); RETURN pg_catalog.now(); END $$;
-- the bait works: a query of the role's own with that search_path runs it
SET search_path = evil, access_search_path, public, pg_catalog;
SELECT 'a'::text = 'a'::text AS bait;
SET search_path = access_search_path, public;
SELECT who, what FROM evil.seen;
TRUNCATE evil.seen;
RESET ROLE;

-- a superuser, with the attacker's schema first
SET search_path = evil, access_search_path, public, pg_catalog;
SELECT mnist_train('src', 'sp_model', epochs => 1) AS m1 \gset
SET client_min_messages = warning;
SELECT mnist_train('src', 'sp_model', epochs => 1, init_model => 'sp_model', validation => 'src',
                   deploy => 'if_better') AS m2 \gset
RESET client_min_messages;
SELECT count(mnist_predict(pixels, 'sp_model')) AS predicted FROM src;
SELECT count(mnist_predict_proba(pixels, 'sp_model')) AS probabilities FROM src;
SELECT rows FROM mnist_evaluate('src', 'sp_model');
SELECT rows FROM mnist_evaluate('src', :m1);
SELECT sum(count) AS confusion FROM mnist_confusion_matrix('src', 'sp_model');
-- (the test's own comparisons wait for the normal search_path: "=" would be the bait)
SELECT mnist_deploy('sp_model', :m1) AS deployed \gset
SELECT mnist_deploy('sp_model') AS deployed_newest \gset
SELECT mnist_rollback('sp_model') AS rolled_back \gset
CREATE TRIGGER classify BEFORE INSERT ON incoming
	FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'sp_model');
INSERT INTO incoming (pixels) SELECT pixels FROM src;
SELECT count(predicted) AS classified FROM incoming;
-- online learning runs in the worker's database only (test/integration/online_learning.sh):
-- here it is refused after its arguments are checked (not through try(): its nullif() would
-- take evil's "=")
SELECT mnist_online_start('sp_model', 'sp_topic', 'src');
SET search_path = access_search_path, public;
SELECT :m2 > :m1 AS gated, :deployed = :m1 AS deployed, :deployed_newest = :m2 AS deployed_newest,
       :rolled_back = :m1 AS rolled_back;
SELECT who, what FROM evil.seen;

-- the role itself: a model is stored (as the owner of mnist_models) with its search_path, and
-- a temporary mnist_models of its own is neither read nor written
SET ROLE regress_access_attacker;
CREATE TEMP TABLE mnist_models (LIKE public.mnist_models);
INSERT INTO pg_temp.mnist_models
	SELECT id, name, created_at, hyperparameters, metrics, '\x'::bytea, trained_by FROM public.mnist_models;
SET search_path = evil, access_search_path, public, pg_catalog;
SELECT mnist_train('src', 'sp_attacker', epochs => 1) AS m3 \gset
SELECT count(mnist_predict(pixels, 'sp_attacker')) AS predicted FROM src;
SELECT count(mnist_predict(pixels, 'sp_model')) AS predicted_other FROM src;
SET search_path = access_search_path, public;
SELECT count(*) > 0 AS temp_rows, bool_and(weights = '\x' AND name <> 'sp_attacker') AS unchanged
  FROM pg_temp.mnist_models;
SELECT count(*) AS stored FROM public.mnist_models WHERE id = :m3;
DISCARD TEMP;
SELECT who, what FROM evil.seen;
RESET ROLE;

DELETE FROM mnist_models WHERE name LIKE 'sp\_%';
DELETE FROM mnist_deployments WHERE name LIKE 'sp\_%';
DROP SCHEMA access_search_path CASCADE;
DROP SCHEMA evil CASCADE;
DROP ROLE regress_access_attacker;

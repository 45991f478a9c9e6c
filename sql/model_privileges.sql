-- Privileges: everybody reads mnist_models, nobody writes it directly; training reads the
-- source as the caller (SELECT privilege, row-level security, views, partitions).
\set schema model_privileges
\i sql/common/setup.psql
-- (left over by an interrupted run?)
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_mnist_user;
DROP ROLE IF EXISTS regress_mnist_other;
DROP ROLE IF EXISTS regress_mnist_gone;
RESET client_min_messages;
CREATE ROLE regress_mnist_user;
GRANT USAGE ON SCHEMA model_privileges TO regress_mnist_user;

CREATE TABLE secret AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 300;
CREATE TABLE open AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 300;
GRANT SELECT ON open TO regress_mnist_user;
CREATE TABLE half_open AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 300;
GRANT SELECT (id, label) ON half_open TO regress_mnist_user;
CREATE TABLE columns_only AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 300;
GRANT SELECT (pixels, label) ON columns_only TO regress_mnist_user;
UPDATE columns_only SET label = 11 WHERE id = 5;
CREATE TABLE rls AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 300;
ALTER TABLE rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY low_digits ON rls FOR SELECT TO regress_mnist_user USING (label < 5);
GRANT SELECT ON rls TO regress_mnist_user;
CREATE VIEW no_zeros AS SELECT pixels, label FROM open WHERE label <> 0;
GRANT SELECT ON no_zeros TO regress_mnist_user;
CREATE TABLE parted (pixels bytea, label smallint) PARTITION BY LIST ((label % 2));
CREATE TABLE parted_even PARTITION OF parted FOR VALUES IN (0);
CREATE TABLE parted_odd PARTITION OF parted FOR VALUES IN (1);
INSERT INTO parted SELECT pixels, label FROM mnist_train ORDER BY id LIMIT 200;
GRANT SELECT ON parted TO regress_mnist_user;

CREATE ROLE regress_mnist_other;
GRANT USAGE ON SCHEMA model_privileges TO regress_mnist_other;
GRANT SELECT ON open TO regress_mnist_other;
SET ROLE regress_mnist_other;
SELECT mnist_train('open', 'priv_other', epochs => 1) > 0 AS other_model;
RESET ROLE;
SET ROLE regress_mnist_user;
-- everybody may read the change data capture status
SELECT count(*) AS status_rows FROM mnist_cdc_status;
-- reading models is allowed, writing them directly is not
SELECT count(*) >= 0 AS can_read FROM mnist_models;
SELECT try($$INSERT INTO mnist_models (name, hyperparameters, metrics, weights) VALUES ('x', '{}', '{}', '\x')$$);
SELECT try($$UPDATE mnist_models SET name = 'x'$$);
SELECT try($$DELETE FROM mnist_models$$);
SELECT try($$TRUNCATE mnist_models$$);
SELECT try($$SELECT nextval('mnist_models_id_seq')$$);
-- the source is read with the caller's privileges
SELECT try($$SELECT mnist_train('secret', 'priv_secret', epochs => 1)$$);
SELECT try($$SELECT mnist_train('half_open', 'priv_half', epochs => 1)$$);
-- but the model row is written through the function
SELECT mnist_train('open', 'priv_open', epochs => 1) AS open_id \gset
SELECT name, metrics->'rows' AS rows FROM mnist_models WHERE id = :open_id;
-- SELECT on the two columns is enough; an unreadable id column does not name the bad row
SELECT try($$SELECT * FROM mnist_evaluate('columns_only', 'priv_open')$$);
SELECT try($$SELECT * FROM mnist_evaluate('secret', 'priv_open')$$);
-- row-level security, views and partitioned tables behave as in a SELECT
SELECT count(*) < 300 AS rls_hides_rows, bool_and(label < 5) AS only_low_digits FROM rls;
SELECT mnist_train('rls', 'priv_rls', epochs => 1) AS rls_id \gset
SELECT (metrics->>'rows')::bigint = (SELECT count(*) FROM rls) AS trained_on_visible_rows
  FROM mnist_models WHERE id = :rls_id;
SELECT rows = (SELECT count(*) FROM rls) AS evaluated_visible_rows FROM mnist_evaluate('rls', 'priv_rls');
SELECT mnist_train('no_zeros', 'priv_view', epochs => 1) AS view_id \gset
SELECT (metrics->>'rows')::bigint = (SELECT count(*) FROM open WHERE label <> 0) AS view_rows,
       metrics->'source'->>'table' AS source
  FROM mnist_models WHERE id = :view_id;
SELECT mnist_train('parted', 'priv_parted', epochs => 1) AS parted_id \gset
SELECT metrics->'rows' AS rows FROM mnist_models WHERE id = :parted_id;
SELECT count(*) AS predicted FROM open WHERE mnist_predict(pixels, 'priv_parted') BETWEEN 0 AND 9;
-- a model name belongs to the role that first stored it: nobody else can swap it
SELECT mnist_train('open', 'priv_open', epochs => 1) > :open_id AS retrained_own_model;
SELECT try($$SELECT mnist_train('open', 'priv_other', epochs => 1)$$);
SELECT trained_by FROM mnist_models WHERE id = :open_id;
RESET ROLE;
-- the owner sees every row of rls
SELECT rows FROM mnist_evaluate('rls', 'priv_rls');
SELECT name, trained_by FROM mnist_models WHERE name LIKE 'priv%' ORDER BY id;
-- members of the role may
GRANT regress_mnist_other TO regress_mnist_user;
SET ROLE regress_mnist_user;
SELECT mnist_train('open', 'priv_other', epochs => 1) > 0 AS member_may;
RESET ROLE;
-- a superuser may store models of any name
SELECT mnist_train('open', 'priv_open', epochs => 1) > 0 AS superuser_may;
SELECT trained_by = current_user::regrole AS by_superuser FROM mnist_models WHERE name = 'priv_open' ORDER BY id DESC LIMIT 1;

-- the name of a dropped role stays locked, with a clear error, until a superuser gives it to
-- another role with mnist_model_reassign()
CREATE ROLE regress_mnist_gone;
GRANT USAGE ON SCHEMA model_privileges TO regress_mnist_gone;
GRANT SELECT ON open TO regress_mnist_gone;
SET ROLE regress_mnist_gone;
SELECT mnist_train('open', 'priv_gone', epochs => 1) > 0 AS gone_trained;
RESET ROLE;
DROP OWNED BY regress_mnist_gone;
DROP ROLE regress_mnist_gone;
SET ROLE regress_mnist_user;
SELECT regexp_replace(try($$SELECT mnist_train('open', 'priv_gone', epochs => 1)$$), 'OID \d+', 'OID N');
SELECT try($$SELECT mnist_model_reassign('priv_gone', 'regress_mnist_user')$$);
RESET ROLE;
SELECT mnist_model_reassign('priv_gone', 'regress_mnist_user') AS reassigned_rows;
SELECT try($$SELECT mnist_model_reassign('no_such_model', 'regress_mnist_user')$$);
SET ROLE regress_mnist_user;
SELECT mnist_train('open', 'priv_gone', epochs => 1) > 0 AS new_owner_may;
RESET ROLE;
SELECT DISTINCT trained_by FROM mnist_models WHERE name = 'priv_gone';

DELETE FROM mnist_models WHERE name LIKE 'priv%';
DROP SCHEMA model_privileges CASCADE;
DROP ROLE regress_mnist_user;
DROP OWNED BY regress_mnist_other;
DROP ROLE regress_mnist_other;

-- The output plugin mnist_ml on its own, through pg_logical_slot_get_changes.
-- (The library needs no CREATE EXTENSION to decode; the slot name is unique to this test.)
SET client_min_messages = warning;
DROP TABLE IF EXISTS cdc_dec_img, cdc_dec_other, cdc_dec_named, cdc_dec_pk, cdc_dec_dom;
DROP DOMAIN IF EXISTS cdc_dec_dpix, cdc_dec_dlab;
CREATE TABLE cdc_dec_img (id serial PRIMARY KEY, label smallint, pixels bytea);
CREATE TABLE cdc_dec_other (id int, note text);
CREATE TABLE cdc_dec_named (digit int, img bytea);
CREATE TABLE cdc_dec_pk (a int, b text, label int8, pixels bytea, PRIMARY KEY (b, a));
CREATE DOMAIN cdc_dec_dpix AS bytea;
CREATE DOMAIN cdc_dec_dlab AS smallint;
CREATE TABLE cdc_dec_dom (id serial PRIMARY KEY, label cdc_dec_dlab, pixels cdc_dec_dpix);
RESET client_min_messages;

SELECT 'init' FROM pg_create_logical_replication_slot('mnist_ml_regress_decoder', 'mnist_ml');

-- 784 bytes i*j mod 256 for row j
CREATE FUNCTION cdc_dec_pixels(j int) RETURNS bytea LANGUAGE sql AS
$$ SELECT string_agg(set_byte('\x00'::bytea, 0, (i * j) % 256), ''::bytea ORDER BY i)
   FROM generate_series(0, 783) i $$;

INSERT INTO cdc_dec_img (label, pixels) VALUES (7, cdc_dec_pixels(1)), (0, cdc_dec_pixels(2));
INSERT INTO cdc_dec_other VALUES (1, 'not captured');
UPDATE cdc_dec_img SET label = 3 WHERE id = 2;
DELETE FROM cdc_dec_img WHERE id = 1;
TRUNCATE cdc_dec_other;
BEGIN;
INSERT INTO cdc_dec_img (label, pixels) VALUES (5, cdc_dec_pixels(3));
ROLLBACK;

-- one record per inserted or updated row; deletes, truncate, rollback and other tables: nothing
SELECT split_part(data, E'\t', 1) AS tbl, split_part(data, E'\t', 2) AS key,
       length(split_part(data, E'\t', 3)) AS value_len,
       split_part(data, E'\t', 3) = (SELECT string_agg(get_byte(cdc_dec_pixels(j), i)::text, ',' ORDER BY i)
                                     FROM generate_series(0, 783) i) AS value_ok,
       left(split_part(data, E'\t', 3), 24) AS value_start
FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL),
     LATERAL (SELECT CASE split_part(data, E'\t', 2) WHEN '7' THEN 1 ELSE 2 END AS j) k;

-- tables option (globs), column names, transaction records
INSERT INTO cdc_dec_named VALUES (4, cdc_dec_pixels(1));
INSERT INTO cdc_dec_img (label, pixels) VALUES (1, cdc_dec_pixels(1));
SELECT regexp_replace(left(data, 40), '[0-9]+$', 'N') AS data
FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL,
     'tables', 'public.cdc_dec_n*, other.x', 'label-column', 'digit', 'pixels-column', 'img',
     'include-transaction', 'on');

-- int8 label, composite primary key, domains, no options: every table with pixels and label
INSERT INTO cdc_dec_pk VALUES (1, 'x', 9, cdc_dec_pixels(1));
INSERT INTO cdc_dec_dom (label, pixels) VALUES (8, cdc_dec_pixels(1));
SELECT left(data, 30) FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL);

-- bad rows: a WARNING naming table and LSN, row skipped, decoding goes on
INSERT INTO cdc_dec_img (label, pixels) VALUES (1, '\x0102'), (NULL, cdc_dec_pixels(1)),
       (12, cdc_dec_pixels(1)), (2, NULL), (6, cdc_dec_pixels(2));
\setenv PGDATABASE :DBNAME
\! psql -X -qAt -c "SELECT left(data, 24) FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL)" 2>&1 | sed -E 's#at [0-9A-F]+/[0-9A-F]+#at LSN#'

-- decisions follow DDL inside one decoding session (relcache invalidation)
INSERT INTO cdc_dec_pk VALUES (2, 'y', 1, cdc_dec_pixels(1));
ALTER TABLE cdc_dec_pk RENAME COLUMN label TO digit;
INSERT INTO cdc_dec_pk VALUES (3, 'z', 2, cdc_dec_pixels(1));
ALTER TABLE cdc_dec_pk RENAME COLUMN digit TO label;
INSERT INTO cdc_dec_pk VALUES (4, 'w', 3, cdc_dec_pixels(1));
SELECT left(data, 22) FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL);

-- any legal table name: tab, newline, carriage return and backslash are escaped as \t, \n,
-- \r and \\, so a record always has exactly three tab-separated fields
DO $$
BEGIN
	EXECUTE format('CREATE TABLE %I (label smallint, pixels bytea)', E'cdc_dec_a\tX');
	EXECUTE format('CREATE TABLE %I (label smallint, pixels bytea)', E'cdc_dec_b\\n\nY\rZ');
END $$;
INSERT INTO cdc_dec_pk VALUES (5, 'v', 2, cdc_dec_pixels(1));
DO $$
BEGIN
	EXECUTE format('INSERT INTO %I VALUES (4, cdc_dec_pixels(1))', E'cdc_dec_a\tX');
	EXECUTE format('INSERT INTO %I VALUES (5, cdc_dec_pixels(1))', E'cdc_dec_b\\n\nY\rZ');
END $$;
SELECT split_part(data, E'\t', 1) AS tbl, split_part(data, E'\t', 2) AS key,
       length(data) - length(replace(data, E'\t', '')) AS tabs
FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL);
DO $$
BEGIN
	EXECUTE format('DROP TABLE %I, %I', E'cdc_dec_a\tX', E'cdc_dec_b\\n\nY\rZ');
END $$;

-- a pattern's schema part and table part match apart: "public.cdc_dec_*" captures the
-- table public."cdc_dec_x.y" but not a table of the schema "public.cdc_dec_evil"; a table of
-- a schema whose name has a dot is never captured (its topic would be public.cdc_dec_evil.t's
-- too): matched by "public*.*", it is refused with a WARNING and its rows are skipped
CREATE SCHEMA "public.cdc_dec_evil";
CREATE TABLE "public.cdc_dec_evil".t (label smallint, pixels bytea);
CREATE TABLE "cdc_dec_x.y" (label smallint, pixels bytea);
INSERT INTO "public.cdc_dec_evil".t VALUES (1, cdc_dec_pixels(1));
INSERT INTO "cdc_dec_x.y" VALUES (2, cdc_dec_pixels(1));
SELECT split_part(data, E'\t', 1) AS tbl, split_part(data, E'\t', 2) AS key
FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL, 'tables', 'public.cdc_dec_*');
INSERT INTO "public.cdc_dec_evil".t VALUES (3, cdc_dec_pixels(1));
SELECT split_part(data, E'\t', 1) AS tbl, split_part(data, E'\t', 2) AS key
FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL, 'tables', 'public*.*');
DROP SCHEMA "public.cdc_dec_evil" CASCADE;
DROP TABLE "cdc_dec_x.y";

-- a partitioned table's rows are captured by its name, whatever its partitions are called,
-- also after ATTACH and DETACH; a partition is not captured by its own name
CREATE TABLE cdc_dec_parted (id int, label smallint, pixels bytea) PARTITION BY LIST (label);
CREATE TABLE cdc_dec_parted_a PARTITION OF cdc_dec_parted FOR VALUES IN (0, 1, 2, 3, 4);
CREATE TABLE part_b PARTITION OF cdc_dec_parted FOR VALUES IN (5, 6, 7, 8, 9);
CREATE TABLE other_root (id int, label smallint, pixels bytea) PARTITION BY LIST (label);
CREATE TABLE cdc_dec_leaf PARTITION OF other_root FOR VALUES IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
INSERT INTO cdc_dec_parted SELECT i, i, cdc_dec_pixels(1) FROM generate_series(0, 9) i;
INSERT INTO other_root VALUES (1, 1, cdc_dec_pixels(1));
ALTER TABLE cdc_dec_parted DETACH PARTITION part_b;
INSERT INTO part_b VALUES (10, 5, cdc_dec_pixels(1));
ALTER TABLE cdc_dec_parted ATTACH PARTITION part_b FOR VALUES IN (5, 6, 7, 8, 9);
INSERT INTO part_b VALUES (11, 6, cdc_dec_pixels(1));
SELECT split_part(data, E'\t', 1) AS tbl, string_agg(split_part(data, E'\t', 2), ',' ORDER BY split_part(data, E'\t', 2)) AS keys
FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL, 'tables', 'public.cdc_dec_*')
GROUP BY 1 ORDER BY 1;
DROP TABLE cdc_dec_parted, other_root;

-- unknown option
SELECT data FROM pg_logical_slot_peek_changes('mnist_ml_regress_decoder', NULL, NULL, 'format', 'json');

-- format_version: 1 (the current record format, also the default) is accepted; another
-- version is refused with SQLSTATE 0A000, a value that is no integer with 22023
INSERT INTO cdc_dec_img (label, pixels) VALUES (4, cdc_dec_pixels(1));
SELECT count(*) AS records, (SELECT array_agg(data) FROM pg_logical_slot_peek_changes('mnist_ml_regress_decoder', NULL, NULL))
       = array_agg(data) AS same_as_default
FROM pg_logical_slot_peek_changes('mnist_ml_regress_decoder', NULL, NULL, 'format_version', '1');
SELECT data FROM pg_logical_slot_peek_changes('mnist_ml_regress_decoder', NULL, NULL, 'format_version', '2');
\echo :LAST_ERROR_SQLSTATE
SELECT data FROM pg_logical_slot_peek_changes('mnist_ml_regress_decoder', NULL, NULL, 'format_version', 'one');
\echo :LAST_ERROR_SQLSTATE
SELECT left(data, 17) FROM pg_logical_slot_get_changes('mnist_ml_regress_decoder', NULL, NULL);

SELECT 'dropped' FROM pg_drop_replication_slot('mnist_ml_regress_decoder');
DROP TABLE cdc_dec_img, cdc_dec_other, cdc_dec_named, cdc_dec_pk, cdc_dec_dom;
DROP DOMAIN cdc_dec_dpix, cdc_dec_dlab;
DROP FUNCTION cdc_dec_pixels(int);

--
-- CREATE EXTENSION / DROP EXTENSION: every object the extension creates goes away with it.
-- Runs in a database of its own, so the extension existing elsewhere does not matter.
--
SET client_min_messages = warning;
DROP DATABASE IF EXISTS mnist_ml_extension_test;
RESET client_min_messages;
CREATE DATABASE mnist_ml_extension_test;
\c mnist_ml_extension_test
-- snapshot of every object in the database's own catalogs (rows with an oid), plus the
-- dependency, comment and privilege rows that have none
CREATE TEMP TABLE before_objects (catalog name, oid oid);
CREATE TEMP TABLE before_counts (catalog name, n bigint);
CREATE FUNCTION pg_temp.snapshot() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	cat name;
BEGIN
	FOR cat IN
		SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
		WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r'
		  AND NOT c.relisshared AND a.attname = 'oid'
	LOOP
		EXECUTE format('INSERT INTO before_objects SELECT %L, oid FROM pg_catalog.%I', cat, cat);
	END LOOP;
	INSERT INTO before_counts VALUES
		('pg_depend', (SELECT count(*) FROM pg_depend)),
		('pg_description', (SELECT count(*) FROM pg_description)),
		('pg_init_privs', (SELECT count(*) FROM pg_init_privs)),
		('pg_seclabel', (SELECT count(*) FROM pg_seclabel));
END $$;
-- objects (described) present now but not in the snapshot
CREATE FUNCTION pg_temp.new_objects() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	cat name;
BEGIN
	FOR cat IN SELECT DISTINCT catalog FROM before_objects LOOP
		RETURN QUERY EXECUTE format(
			'SELECT pg_describe_object(%L::regclass, oid, 0) FROM pg_catalog.%I
			 WHERE oid NOT IN (SELECT oid FROM before_objects WHERE catalog = %L)',
			'pg_catalog.' || cat, cat, cat);
	END LOOP;
	RETURN QUERY
		SELECT c.catalog || ': ' || c.n || ' rows before' FROM before_counts c
		WHERE c.n <> CASE c.catalog
			WHEN 'pg_depend' THEN (SELECT count(*) FROM pg_depend)
			WHEN 'pg_description' THEN (SELECT count(*) FROM pg_description)
			WHEN 'pg_init_privs' THEN (SELECT count(*) FROM pg_init_privs)
			WHEN 'pg_seclabel' THEN (SELECT count(*) FROM pg_seclabel) END;
END $$;
SELECT pg_temp.snapshot();
CREATE EXTENSION mnist_ml;
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'mnist_ml';
-- the extension owns objects, and every one but sequences has a comment
SELECT count(*) > 0 AS has_members
FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'mnist_ml';
SELECT pg_describe_object(d.classid, d.objid, 0) AS without_comment
FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'mnist_ml'
  AND obj_description(d.objid, d.classid::regclass::name) IS NULL
  AND NOT (d.classid = 'pg_class'::regclass
           AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S')
  AND NOT (d.classid = 'pg_type'::regclass
           AND (SELECT typcategory = 'A' OR typrelid <> 0 AND
                       (SELECT relkind FROM pg_class WHERE oid = typrelid) <> 'c'
                FROM pg_type WHERE oid = d.objid))
ORDER BY 1;
DROP EXTENSION mnist_ml;
-- nothing left behind: no new catalog row, and no object named mnist_*
SELECT * FROM pg_temp.new_objects() AS leftover ORDER BY 1;
SELECT 'pg_class' AS catalog, relname AS name FROM pg_class WHERE relname LIKE 'mnist\_%'
UNION ALL SELECT 'pg_proc', proname FROM pg_proc WHERE proname LIKE 'mnist\_%'
UNION ALL SELECT 'pg_type', typname FROM pg_type WHERE typname LIKE '%mnist\_%'
UNION ALL SELECT 'pg_namespace', nspname FROM pg_namespace WHERE nspname LIKE 'mnist\_%';
-- and it can be created again
CREATE EXTENSION mnist_ml;
DROP EXTENSION mnist_ml;
\c contrib_regression
DROP DATABASE mnist_ml_extension_test;

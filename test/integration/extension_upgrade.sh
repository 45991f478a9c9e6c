#!/bin/bash
# extension_upgrade: 1.0 -> 1.1 -> 1.2.  A database created at 1.0 works with the new library
# (models stored and served, the status read through 1.0's signatures), ALTER EXTENSION mnist_ml
# UPDATE keeps every model served as before, and the upgraded catalog (functions, tables,
# columns, constraints, views, triggers, indexes, comments, grants, pg_dump configuration)
# equals a fresh install of the current version.  A database at 1.1 with a user's view on
# mnist_cdc_status updates to 1.2 with that view kept (1.2 adds columns at the end); before
# the update its mnist_train reads 1.1's arguments through the symbol the released scripts
# bind.  Fresh and updated installs bind the functions whose form changed to their own entry
# points, not to that shared symbol.
source "$(dirname "$0")/../lib.sh"

old=mnist_upgrade_old
new=mnist_upgrade_new
v11=mnist_upgrade_11
current=1.2
qd() { local db=$1; shift; psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" "$@"; }
at_exit "dropdb --if-exists $old; dropdb --if-exists $new; dropdb --if-exists $v11"
dropdb --if-exists $old && dropdb --if-exists $new && dropdb --if-exists $v11
createdb $old && createdb $new && createdb $v11 || fail "createdb"

# 1.1 -> 1.2 with a user's view on mnist_cdc_status (and one on that view): the update keeps them
qd $v11 -c "CREATE EXTENSION mnist_ml VERSION '1.1'"
qd $v11 -c "CREATE VIEW my_cdc AS SELECT state, skipped, last_error FROM mnist_cdc_status" \
	-c "CREATE VIEW my_cdc_alert AS SELECT state FROM my_cdc WHERE last_error IS NOT NULL" || fail "user views at 1.1"
# a 1.1 database not updated calls the released symbol with 1.1's arguments: deploy is read
# (before the source: an empty table is never reached)
check_eq "$(qd $v11 -c "CREATE TABLE t11 (pixels bytea, label int)" \
	-c "SELECT mnist_train('t11', 'x', deploy => 'sometimes')" 2>&1)" \
	"ERROR:  deploy must be 'always', 'never' or 'if_better', not 'sometimes'" "1.1's mnist_train reads deploy"
qd $v11 -c "ALTER EXTENSION mnist_ml UPDATE" || fail "ALTER EXTENSION mnist_ml UPDATE from 1.1 with a dependent view"
check_eq "$(qd $v11 -c "SELECT extversion FROM pg_extension WHERE extname = 'mnist_ml'")" $current "1.1 updated to $current"
check_eq "$(qd $v11 -c "SELECT count(*) FROM my_cdc" -c "SELECT count(*) >= 0 FROM my_cdc_alert")" "1
t" "the user's views on mnist_cdc_status survive the update"
check_eq "$(qd $v11 -c "SELECT waiting_table IS NULL, skipped >= 0 FROM mnist_cdc_status")" "t|t" \
	"the updated view has the new columns"

qd $old -c "CREATE EXTENSION mnist_ml VERSION '1.0'"
check_eq "$(qd $old -c "SELECT extversion FROM pg_extension WHERE extname = 'mnist_ml'")" 1.0 "installed at 1.0"
qd $old -c "SET client_min_messages = warning" -f "$MNIST_DATA/digits/mnist_test.sql" >/dev/null
qd $old -c "SET mnist_ml.progress = off" \
	-c "SELECT mnist_train('mnist_test', 'up', epochs => 1, seed => 7) > 0" >/dev/null || fail "train at 1.0"
predict="SELECT sum(mnist_predict(pixels, 'up') * id) FROM mnist_test"
before=$(qd $old -c "$predict")
[ -n "$before" ] && pass "the new library trains and predicts in a 1.0 database" || fail "predict at 1.0"
check_eq "$(qd $old -c "SELECT count(*) FROM mnist_cdc_status")" 1 "the status view of 1.0 (12 columns) reads"
# a 1.0 database has no mnist_deployments: the newest model of a name is served
qd $old -c "SET mnist_ml.progress = off" \
	-c "SELECT mnist_train('mnist_test', 'up2', epochs => 1, seed => s) FROM generate_series(1, 2) s" >/dev/null ||
	fail "train twice at 1.0"
check_eq "$(qd $old -c "SELECT (SELECT rows FROM mnist_evaluate('mnist_test', 'up2')) = 2000")" t \
	"evaluation at 1.0 serves the newest model"

qd $old -c "ALTER EXTENSION mnist_ml UPDATE" || fail "ALTER EXTENSION mnist_ml UPDATE"
check_eq "$(qd $old -c "SELECT extversion FROM pg_extension WHERE extname = 'mnist_ml'")" $current "updated to $current"
check_eq "$(qd $old -c "$predict")" "$before" "the stored model is served as before"
check_eq "$(qd $old -c "SELECT skipped >= 0, waiting_table IS NULL FROM mnist_cdc_status")" "t|t" "the $current status view reads"
check_eq "$(qd $old -c "SELECT string_agg(d.name || ' ' || d.reason || ' ' || (d.model_id = m.newest), ', ' ORDER BY d.name)
	FROM mnist_deployments d JOIN (SELECT name, max(id) AS newest FROM mnist_models GROUP BY name) m USING (name)")" \
	"up upgrade true, up2 upgrade true" "the update deploys the newest model of each name (reason upgrade)"
check_eq "$(qd $old -c "SELECT mnist_rollback('up2') IS NULL" 2>&1)" \
	'ERROR:  model "up2" has no earlier deployment to roll back to
DETAIL:  Model id 3 is deployed; the models deployed before it, if any, were deleted or rolled back.' \
	"nothing to roll back to after the update"
same="SELECT (SELECT loss FROM mnist_evaluate('mnist_test', 'up2')) = (SELECT loss FROM mnist_evaluate('mnist_test', 2::bigint))"
check_eq "$(qd $old -c "SELECT mnist_deploy('up2', 2)" -c "$same" -c "SELECT mnist_rollback('up2')" -c "$same")" "2
t
3
f" "deploy and roll back after the update"

qd $new -c "CREATE EXTENSION mnist_ml"
check_eq "$(qd $new -c "SELECT extversion FROM pg_extension WHERE extname = 'mnist_ml'")" $current "a fresh install is $current"
# the symbols the released scripts bind to two forms (1.0's and 1.1's) serve only databases not
# updated: a fresh install and an updated one bind each function to its form's own entry point
legacy="SELECT coalesce(string_agg(p.proname || ' -> ' || p.prosrc, ', ' ORDER BY p.proname), 'none')
	FROM pg_proc p WHERE p.probin IS NOT NULL AND p.prosrc IN ('mnist_train', 'mnist_train_topic', 'mnist_cdc_status')"
check_eq "$(qd $new -c "$legacy")" none "a fresh install binds no 1.0/1.1 symbol"
check_eq "$(qd $old -c "$legacy")" none "an updated install binds no 1.0/1.1 symbol"
check_eq "$(qd $new -c "SELECT string_agg(p.prosrc, ',' ORDER BY p.prosrc) FROM pg_proc p
	WHERE p.proname IN ('mnist_train', 'mnist_train_topic', 'mnist_cdc_status')")" \
	"mnist_cdc_status_1_1,mnist_train_1_1,mnist_train_topic_1_1" "each is bound to its 1.1 form's entry point"

# the extension's catalog, described without oids, sorted
catalog() {
	qd "$1" <<-'SQL'
	WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'mnist_ml'),
	mem AS (SELECT classid, objid FROM pg_depend, ext
	        WHERE refclassid = 'pg_extension'::regclass AND refobjid = ext.oid AND deptype = 'e')
	SELECT 'function ' || p.oid::regprocedure || ' -> ' || pg_get_function_result(p.oid)
	       || ' ' || p.provolatile::text || p.prosecdef::text || coalesce(array_to_string(p.proconfig, ','), '')
	       || ' parallel ' || p.proparallel::text || ' cost ' || p.procost || ' rows ' || p.prorows
	       || ' acl ' || coalesce(p.proacl::text, 'default') || ' src ' || md5(p.prosrc)
	       || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
	  FROM mem JOIN pg_proc p ON mem.classid = 'pg_proc'::regclass AND p.oid = mem.objid
	UNION ALL
	SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' acl ' || coalesce(c.relacl::text, 'default')
	       || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
	       || coalesce(' view ' || pg_get_viewdef(c.oid), '')
	  FROM mem JOIN pg_class c ON mem.classid = 'pg_class'::regclass AND c.oid = mem.objid
	UNION ALL
	SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	       || ' ' || a.attnotnull || ' ' || a.attnum || ' storage ' || a.attstorage::text || ' default ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
	       || ' comment ' || coalesce(col_description(c.oid, a.attnum), '-')
	  FROM mem JOIN pg_class c ON mem.classid = 'pg_class'::regclass AND c.oid = mem.objid
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
	UNION ALL
	SELECT 'constraint ' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) || ' ' || k.convalidated
	  FROM mem JOIN pg_class c ON mem.classid = 'pg_class'::regclass AND c.oid = mem.objid
	  JOIN pg_constraint k ON k.conrelid = c.oid
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(i.indexrelid)
	  FROM mem JOIN pg_index i ON mem.classid = 'pg_class'::regclass AND i.indrelid = mem.objid
	UNION ALL
	SELECT 'trigger ' || pg_get_triggerdef(t.oid)
	  FROM mem JOIN pg_trigger t ON mem.classid = 'pg_class'::regclass AND t.tgrelid = mem.objid
	UNION ALL
	SELECT 'other ' || pg_describe_object(classid, objid, 0)
	  FROM mem WHERE classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass)
	UNION ALL
	SELECT 'dump config ' || coalesce((SELECT string_agg(c::regclass::text || ' ' || w, ', ' ORDER BY c::regclass::text)
	       FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, w) WHERE e.extname = 'mnist_ml'), '-')
	ORDER BY 1
	SQL
}
catalog $old >"$TEST_TMP/catalog.upgraded" || fail "the catalog query failed"
catalog $v11 >"$TEST_TMP/catalog.upgraded11" || fail "the catalog query failed"
catalog $new >"$TEST_TMP/catalog.fresh" || fail "the catalog query failed"
if [ "$(wc -l <"$TEST_TMP/catalog.fresh")" -lt 20 ]; then
	fail "the catalog query found almost nothing: $(cat "$TEST_TMP/catalog.fresh")"
elif diff "$TEST_TMP/catalog.fresh" "$TEST_TMP/catalog.upgraded" >"$TEST_TMP/catalog.diff"; then
	pass "the upgraded catalog equals a fresh $current install ($(wc -l <"$TEST_TMP/catalog.fresh") entries)"
else
	fail "the upgraded catalog differs from a fresh install:"
	sed 's/^/    /' "$TEST_TMP/catalog.diff" >&2
fi
if diff "$TEST_TMP/catalog.fresh" "$TEST_TMP/catalog.upgraded11" >"$TEST_TMP/catalog11.diff"; then
	pass "the catalog updated from 1.1 equals a fresh $current install"
else
	fail "the catalog updated from 1.1 differs from a fresh install:"
	sed 's/^/    /' "$TEST_TMP/catalog11.diff" >&2
fi
check_eq "$(grep -c '^function' "$TEST_TMP/catalog.fresh")" "$(q "SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'mnist_ml'")" \
	"the comparison covers every function of the extension"

#!/bin/bash
# Online learning and the roles that start jobs (issue 20): a job owner's code (a validation
# view calling the owner's function) runs as a security-restricted operation and cannot change
# the worker's session: a set_config(..., false) is rolled back after the round, so the other
# roles' jobs go on training and the worker never restarts; a temporary table is refused and
# fails that job alone.  mnist_online_start and mnist_online_stop with an attacker's schema
# first in search_path run nothing of it.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/topic_lib.sh"

S=online_sec
T=online_sec
D=$MNIST_DATA/digits
roles="regress_online_poison regress_online_good regress_online_attacker"
cleanup() {
	online_cleanup 'online\_sec%' $S
	q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS evil CASCADE" >/dev/null 2>&1
	for r in $roles; do
		q "REVOKE ALL ON FUNCTION mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text) FROM $r" >/dev/null 2>&1
		q "DROP ROLE IF EXISTS $r" >/dev/null 2>&1
	done
}
at_exit cleanup
cleanup
online_data $S
for r in $roles; do
	q "CREATE ROLE $r; GRANT USAGE, CREATE ON SCHEMA $S TO $r; GRANT SELECT ON $S.val, $S.base TO $r;
	   GRANT EXECUTE ON FUNCTION mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text) TO $r"
done
broker_create_topic $T 1
topic_messages $D/train-images-idx3-ubyte $D/train-labels-idx1-ubyte 0 100 >"$TEST_TMP/hundred.txt"

status() { q "SELECT $1 FROM mnist_online_status WHERE model_name = '$2'"; }
worker_pid() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mnist_ml online'"; }
as_role() {	# as_role ROLE SQL
	psql -X -qAt -v ON_ERROR_STOP=1 -c "SET ROLE $1" -c "SET mnist_ml.progress = off" -c "$2" >/dev/null
}
# role_job ROLE NAME VALIDATION: the role trains NAME and starts its job on the topic
role_job() {
	as_role $1 "SELECT mnist_train('$S.base', '$2', epochs => 1, seed => 1)" || fail "train $2"
	as_role $1 "SELECT mnist_online_start('$2', '$T', '$3', every => '1 second', min_rows => 100, max_rows => 100)" ||
		fail "start $2"
	wait_for "[ \"\$(status 'offsets IS NOT NULL' $2)\" = t ]" 30 "the job $2 waits for messages"
}

# the poisoning role: its validation view calls its function, which makes the session read-only;
# another view of it creates a temporary table
as_role regress_online_poison "
	CREATE FUNCTION $S.poison() RETURNS boolean LANGUAGE sql
		AS \$\$ SELECT pg_catalog.set_config('default_transaction_read_only', 'on', false) IS NOT NULL \$\$;
	CREATE VIEW $S.poisoned AS SELECT pixels, label FROM $S.val WHERE $S.poison();
	CREATE FUNCTION $S.temp_table() RETURNS boolean LANGUAGE plpgsql
		AS \$\$ BEGIN CREATE TEMP TABLE IF NOT EXISTS kept (x int); RETURN true; END \$\$;
	CREATE VIEW $S.with_temp AS SELECT pixels, label FROM $S.val WHERE $S.temp_table()" ||
	fail "the poisoning role's views"
check_eq "$(psql -X -qAt -c "SET ROLE regress_online_poison" -c "SELECT count(*) FROM $S.poisoned" -c "SHOW default_transaction_read_only")" \
	"500
on" "the bait works: reading the view makes the session read-only"

pid=$(worker_pid)
role_job regress_online_poison online_sec_poison "$S.poisoned"
role_job regress_online_good online_sec_good "$S.val"
role_job regress_online_poison online_sec_temp "$S.with_temp"
topic_produce $T "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status rounds online_sec_good)\" = 1 ] && [ \"\$(status rounds online_sec_poison)\" = 1 ]" 60 \
	"round 1 of the good role's job and of the poisoning one"
wait_for "[ \"\$(status state online_sec_temp)\" = failed ]" 30 "the job whose view creates a temporary table failed"
check_eq "$(status last_error online_sec_temp)" "cannot create temporary table within security-restricted operation" \
	"status says why"
topic_produce $T "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status rounds online_sec_good)\" = 2 ] && [ \"\$(status rounds online_sec_poison)\" = 2 ]" 60 \
	"round 2 of both: the worker's transactions may still write"
topic_produce $T "$TEST_TMP/hundred.txt"
wait_for "[ \"\$(status rounds online_sec_good)\" = 3 ]" 60 "round 3 of the good role's job"
check_eq "$(status "state || ' ' || coalesce(last_error, '')" online_sec_good)" "running " "the good role's job runs"
check_eq "$(worker_pid)" "$pid" "the worker never restarted"
q "SELECT mnist_online_stop('online_sec_poison'), mnist_online_stop('online_sec_good')" >/dev/null

# search_path: an attacker's schema "evil" first while a superuser starts and stops a job (in a
# transaction rolled back: the worker never sees it); its "=" for text, now() and
# clock_timestamp() record whoever runs them, and nothing of it runs
q "SET mnist_ml.progress = off; SELECT mnist_train('$S.base', 'online_sec_sp', epochs => 1)" >/dev/null
psql -X -qAt -v ON_ERROR_STOP=1 >/dev/null <<-SQL || fail "the attacker's schema"
	CREATE SCHEMA evil AUTHORIZATION regress_online_attacker;
	SET ROLE regress_online_attacker;
	CREATE TABLE evil.seen (who name, what text);
	GRANT INSERT ON evil.seen TO PUBLIC;
	CREATE FUNCTION evil.record(what text) RETURNS void LANGUAGE sql
		AS \$\$ INSERT INTO evil.seen VALUES (current_user, what) \$\$;
	CREATE FUNCTION evil.text_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql
		AS \$\$ BEGIN PERFORM evil.record('text = text'); RETURN a OPERATOR(pg_catalog.=) b; END \$\$;
	CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
	CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql
		AS \$\$ BEGIN PERFORM evil.record('now()'); RETURN pg_catalog.now(); END \$\$;
	CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql
		AS \$\$ BEGIN PERFORM evil.record('clock_timestamp()'); RETURN pg_catalog.now(); END \$\$;
SQL
check_eq "$(psql -X -qAt -c "SET search_path = evil, public, pg_catalog" -c "SELECT 'a'::text = 'a'::text, now() IS NOT NULL" \
	-c "SELECT string_agg(what, ', ' ORDER BY what) FROM evil.seen" -c "TRUNCATE evil.seen")" "t|t
now(), text = text" "the bait works: a query with that search_path runs evil's = and now()"
check_eq "$(psql -X -qAt -v ON_ERROR_STOP=1 -c "SET search_path = evil, public, pg_catalog" -c "BEGIN" \
	-c "SELECT mnist_online_start('online_sec_sp', '$T', '$S.val')" -c "SELECT mnist_online_stop('online_sec_sp')" \
	-c "ROLLBACK" 2>&1)" "
t" "a superuser started and stopped a job with evil first in search_path"
check_eq "$(q "SELECT count(*) FROM evil.seen")" 0 "nothing of evil ran"
check_eq "$(q "SELECT count(*) FROM mnist_online_jobs WHERE model_name = 'online_sec_sp'")" 0 "(rolled back)"

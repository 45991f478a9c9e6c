#!/bin/bash
# access_workers: the online learning worker runs as a superuser with the database's settings.
# A search_path set on the database (by its owner, say) that puts a role's schema first must
# not make it run that role's operators: its job queries, every second, use "=", "<>" and IN.
# A role's schema holds bait operators that record who ran them; the worker is restarted with
# the database's search_path pointing there, and nothing of the schema may run.
source "$(dirname "$0")/../lib.sh"

db=$(q "SELECT current_database()")
cleanup() {
	q "ALTER DATABASE \"$db\" RESET search_path" >/dev/null 2>&1
	q "DROP SCHEMA IF EXISTS access_evil CASCADE" >/dev/null 2>&1
	q "DROP ROLE IF EXISTS regress_access_evil" >/dev/null 2>&1
}
at_exit cleanup
cleanup

q "CREATE ROLE regress_access_evil; CREATE SCHEMA access_evil AUTHORIZATION regress_access_evil" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' || fail "the bait schema could not be created"
SET ROLE regress_access_evil;
CREATE TABLE access_evil.seen (who name, what text);
GRANT INSERT ON access_evil.seen TO PUBLIC;
CREATE FUNCTION access_evil.text_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN INSERT INTO access_evil.seen VALUES (current_user, 'text = text');
	          RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION access_evil.text_ne(a text, b text) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN INSERT INTO access_evil.seen VALUES (current_user, 'text <> text');
	          RETURN a OPERATOR(pg_catalog.<>) b; END $$;
CREATE OPERATOR access_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = access_evil.text_eq);
CREATE OPERATOR access_evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = access_evil.text_ne);
SQL
q "ALTER DATABASE \"$db\" SET search_path = access_evil, public, pg_catalog" >/dev/null

# the bait works for a new session of the database
check_eq "$(q "SELECT 'a'::text = 'a'::text")" t "a session with the database's search_path..."
check_eq "$(q "SELECT count(*) FROM access_evil.seen")" 1 "...runs the bait operator"
q "TRUNCATE access_evil.seen" >/dev/null
# (the test's own sessions from here on: pg_catalog first)
export PGOPTIONS="-c search_path=pg_catalog,public"

# a new online learning worker connects with the database's settings and syncs its jobs
worker() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'mnist_ml online'"; }
old=$(worker)
[ -n "$old" ] || fail "no online learning worker runs"
q "SELECT pg_terminate_backend($old)" >/dev/null
wait_for '[ -n "$(worker)" ] && [ "$(worker)" != "$old" ]' 30 "the online learning worker restarted"
new=$(worker)
wait_for '[ "$(q "SELECT query = '"'"'mnist_ml online: jobs'"'"' AND state = '"'"'idle'"'"' FROM pg_stat_activity WHERE pid = $new")" = t ]' \
	30 "the new worker has read its jobs"
check_eq "$(q "SELECT count(*) FROM access_evil.seen")" 0 "the worker ran none of the schema's operators"
q "SELECT who, what, count(*) FROM access_evil.seen GROUP BY 1, 2"

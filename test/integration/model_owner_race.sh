#!/bin/bash
# model_owner_race: a model name belongs to the role that first stores it, also when two roles
# store the same new name concurrently.  Alice trains 'shared' in an open transaction; bob's
# training of 'shared' waits for alice's transaction and then fails with 42501, so alice's
# model is the one served.  Rolled back, alice's claim is gone and bob may have the name.
source "$(dirname "$0")/../lib.sh"

roles="regress_race_alice regress_race_bob"
cleanup() {
	q "DELETE FROM mnist_models WHERE name = 'race_shared'" >/dev/null 2>&1
	q "DROP TABLE IF EXISTS race_src" >/dev/null 2>&1
	for r in $roles; do q "DROP ROLE IF EXISTS $r" >/dev/null 2>&1; done
}
at_exit cleanup
cleanup
q "CREATE TABLE race_src AS SELECT pixels, label FROM generate_series(1, 200) i,
     LATERAL (SELECT (i % 10)::smallint AS label,
                     decode(repeat(lpad(to_hex(i % 256), 2, '0'), 784), 'hex') AS pixels) r"
for r in $roles; do
	q "CREATE ROLE $r LOGIN"
	q "GRANT SELECT ON race_src TO $r"
done

train() {	# train ROLE [SQL after the training, before COMMIT]
	psql -X -qAt -v ON_ERROR_STOP=1 -U "$1" 2>&1 <<-SQL
		SET mnist_ml.progress = off;
		BEGIN;
		SELECT mnist_train('race_src', 'race_shared', epochs => 1, seed => 7) > 0 AS trained;
		${2:-}
		COMMIT;
	SQL
}
# the backend of a session whose current statement is pg_sleep, once it is there
sleeping() {
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE usename = '$1' AND query LIKE 'SELECT pg_sleep%'")" = 1 ]
}

# alice stores her model and keeps her transaction open for 4 s
train regress_race_alice "SELECT pg_sleep(4);" >"$TEST_TMP/race_alice.out" &
alice=$!
wait_for "sleeping regress_race_alice" 30 "alice stored her model, uncommitted"
start=$SECONDS
bob=$(train regress_race_bob)
waited=$((SECONDS - start))
wait "$alice"
check_eq "$(cat "$TEST_TMP/race_alice.out")" t "alice committed"
case $bob in
*'model "race_shared" belongs to role regress_race_alice'*) pass "bob's store fails: $bob" ;;
*) fail "bob's store should fail with 'belongs to role regress_race_alice', got: $bob" ;;
esac
[ "$waited" -ge 2 ] && pass "bob waited for alice's transaction (${waited} s)" ||
	fail "bob did not wait for alice's transaction"
check_eq "$(q "SELECT string_agg(trained_by::text, ',' ORDER BY id) FROM mnist_models WHERE name = 'race_shared'")" \
	regress_race_alice "only alice's model is stored under the name"

# a claim that is rolled back claims nothing
q "DELETE FROM mnist_models WHERE name = 'race_shared'"
train regress_race_alice "SELECT pg_sleep(4); ROLLBACK;" >"$TEST_TMP/race_alice.out" &
alice=$!
wait_for "sleeping regress_race_alice" 30 "alice stored her model again, uncommitted"
bob=$(train regress_race_bob)
wait "$alice"
check_eq "$bob" t "after alice's rollback, bob may store the name"
check_eq "$(q "SELECT string_agg(trained_by::text, ',' ORDER BY id) FROM mnist_models WHERE name = 'race_shared'")" \
	regress_race_bob "bob owns the name"

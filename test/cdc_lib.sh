# test/cdc_lib.sh: helpers shared by the change data capture scripts test/integration/cdc_*.sh
# (sourced after test/lib.sh).  Expected messages are computed from the table with psql and
# Python (hex to decimal), independently of the extension's encoder; topics are read with Kafka's
# own Java console consumer (kafka_dump), not with librdkafka like the product.

PY=/usr/bin/python3

# cdc_load_digits TABLE: a captured table with the 10,000 real digits (train then test), in
# several transactions of the loader's COPY.
cdc_load_digits() {
	q "CREATE TABLE $1 (id serial PRIMARY KEY, label smallint, pixels bytea)"
	for f in mnist_train mnist_test; do
		sed -e '/^CREATE TABLE/d' -e "s/^COPY $f(/COPY $1(/" "$MNIST_DATA/digits/$f.sql" |
			psql -X -q -v ON_ERROR_STOP=1 >/dev/null || fail "loading $f into $1"
	done
}

# cdc_expected TABLE FILE: "label<TAB>csv" of every row, sorted (what the topic must hold).
cdc_expected() {
	psql -X -qAt -F $'\t' -c "SELECT label, encode(pixels, 'hex') FROM $1" |
		$PY -c '
import sys
for line in sys.stdin:
    k, h = line.rstrip("\n").split("\t")
    print(k + "\t" + ",".join(str(b) for b in bytes.fromhex(h)))' | LC_ALL=C sort >"$2"
}

# cdc_topic_pairs TOPIC FILE: "key<TAB>value" of every message of the topic, sorted
# (FILE.dump: kafka_dump's lines, headers included).
cdc_topic_pairs() {
	kafka_dump "$1" "$2.dump" || fail "the Java console consumer could not read $1"
	cut -f3,4 "$2.dump" | LC_ALL=C sort >"$2"
}

# cdc_caught_up: true once the worker confirmed everything written so far.
cdc_caught_up() {
	local lsn
	lsn=$(q "SELECT pg_current_wal_lsn()")
	[ "$(q "SELECT confirmed_lsn >= '$lsn' FROM mnist_cdc_status")" = t ]
}

# cdc_wait_caught_up TIMEOUT MSG
cdc_wait_caught_up() {
	local lsn
	lsn=$(q "SELECT pg_current_wal_lsn()")
	wait_for "[ \"\$(q \"SELECT confirmed_lsn >= '$lsn' FROM mnist_cdc_status\")\" = t ]" "$1" "$2"
}

# cdc_compare EXPECTED ACTUAL MSG [dups-allowed]: the topic's pairs equal the table's rows as
# multisets (or, with dups-allowed, as sets, duplicates counted and printed).
cdc_compare() {
	local exp=$1 act=$2 msg=$3 missing extra dups
	missing=$(LC_ALL=C comm -23 <(uniq "$exp") <(uniq "$act") | wc -l)
	extra=$(LC_ALL=C comm -13 <(uniq "$exp") <(uniq "$act") | wc -l)
	dups=$(( $(wc -l <"$act") - $(uniq "$act" | wc -l) - ($(wc -l <"$exp") - $(uniq "$exp" | wc -l)) ))
	echo "  $msg: $(wc -l <"$exp") rows, $(wc -l <"$act") messages, $missing missing, $extra unexpected, $dups duplicates"
	check_eq "$missing" 0 "$msg: no row missing"
	check_eq "$extra" 0 "$msg: no message that is not a row"
	if [ -z "${4:-}" ]; then
		check_eq "$dups" 0 "$msg: no duplicate"
	fi
}

# cdc_set KEY VALUE: ALTER SYSTEM SET mnist_ml.KEY and reload (cdc_reset undoes it).
cdc_set() {
	q "ALTER SYSTEM SET mnist_ml.$1 = '$2'" && q "SELECT pg_reload_conf()" >/dev/null
}

cdc_reset() {
	q "ALTER SYSTEM RESET mnist_ml.$1" && q "SELECT pg_reload_conf()" >/dev/null
}

# cdc_wait_state STATE TIMEOUT: until mnist_cdc_status.state is STATE.
cdc_wait_state() {
	wait_for "[ \"\$(q 'SELECT state FROM mnist_cdc_status')\" = '$1' ]" "$2" "worker state $1"
}

# cdc_staging SRC: an uncaptured table (name outside public.mnist_*) with the 10,000 digits,
# from which a writer copies batches into a captured table.
cdc_staging() {
	q "DROP TABLE IF EXISTS $1"
	cdc_load_digits "$1"
}

# cdc_writer SRC DST BATCHES PAUSE: copies SRC into DST in BATCHES transactions (ids in order),
# PAUSE seconds apart; a failed batch (server down) is retried until it commits.
cdc_writer() {
	local src=$1 dst=$2 n=$3 pause=$4 i size
	size=$(( ($(q "SELECT max(id) FROM $src") + n - 1) / n ))
	for ((i = 0; i < n; i++)); do
		until q "INSERT INTO $dst (label, pixels) SELECT label, pixels FROM $src
			WHERE id > $((i * size)) AND id <= $(((i + 1) * size)) ORDER BY id" 2>/dev/null; do
			sleep 0.5
		done
		sleep "$pause"
	done
}

# cdc_crash_midstream SRC DST BATCHES: crashes the server (pg_ctl -m immediate) while cdc_writer
# copies SRC into DST in BATCHES transactions 0.1 s apart, once the worker has confirmed some of
# them (shipped, and exactly once: committed in Kafka); restarts it and returns when the writer
# is done and the worker has confirmed everything.
cdc_crash_midstream() {
	local writer lsn
	lsn=$(q "SELECT pg_current_wal_lsn()")
	cdc_writer "$1" "$2" "$3" 0.1 &
	writer=$!
	wait_for "[ \"\$(q \"SELECT confirmed_lsn > '$lsn' FROM mnist_cdc_status\")\" = t ]" 60 \
		"some of $2 confirmed before the crash" >/dev/null
	pg_stop_immediate || fail "pg_ctl -m immediate"
	pg_start || fail "pg_start after the crash"
	wait "$writer"
	cdc_wait_state streaming 60
	cdc_wait_caught_up 180 "all confirmed after the restart"
}

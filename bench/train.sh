#!/bin/bash
# bench/train.sh: training speed and quality of the network against PyTorch, same data, same run.
#
# On Fashion-MNIST (60k train, 10k test; Debian dataset-fashion-mnist), 784 -> 128 relu -> 10,
# Adam 0.001, batch 64, a fresh shuffle per epoch, one thread everywhere:
#   C      src/net.c alone (bench/train_bench.c), data in memory
#   torch  the same model in PyTorch (bench/train_torch.py, torch.set_num_threads(1)): the
#          baseline is a lean loop (uint8 tensor indexed per batch, as net.c does); the
#          tutorial way (float dataset, DataLoader(shuffle=True)) is printed too, slower
#   sql    SELECT mnist_train(...) from a table in a throwaway cluster: the whole call (reading
#          the 60k rows through SPI, training, storing the model), and the epoch alone as
#          mnist_train reports it
# Each is timed with one thread and with THREADS threads (mnist_ml.train_threads,
# torch.set_num_threads); one epoch, ROUNDS times, interleaved (the machine is shared: best of the
# rounds counts, all are printed); then the test accuracy after EPOCHS epochs of each, and
# mnist_predict's rate over the test rows.  FASHION_DIR may name other IDX data (the digits).
# With SCALES (e.g. "10 20"), last, net.c and PyTorch each time one epoch on the training rows
# repeated that many times (600k and 1.2M rows), with 1 and THREADS threads: epoch rows/s and
# its ratio to the 60k epoch's (mnist_train at those sizes: bench/train_scale.sh).
#
# usage: bash bench/train.sh [--no-sql]
# env:   ROUNDS (3), EPOCHS (5), HIDDEN (128), BATCH (64), THREADS (2), FASHION_DIR, PG_CONFIG (pg_config),
#        BENCH_PORT (55431), SCALES (none)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
EPOCHS=${EPOCHS:-5}
HIDDEN=${HIDDEN:-128}
BATCH=${BATCH:-64}
THREADS=${THREADS:-2}
DATA=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
PG_CONFIG=${PG_CONFIG:-pg_config}
PORT=${BENCH_PORT:-55431}
with_sql=1
[ "${1:-}" = --no-sql ] && with_sql=

tmp=$(mktemp -d /tmp/net-bench.XXXXXX)
chmod 755 "$tmp"
pgdata=
cleanup() {
	if [ -n "$pgdata" ] && [ -f "$pgdata/postmaster.pid" ]; then
		runuser -u postgres -- "$bindir/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---------------------------------------------------------------- dependencies
need_apt=()
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || [ -f "$DATA/train-images-idx3-ubyte" ] ||
	need_apt+=(dataset-fashion-mnist)
/usr/bin/python3 -c 'import torch' 2>/dev/null || need_apt+=(python3-torch)
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "installing ${need_apt[*]}"
	apt-get install -y -q "${need_apt[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q "${need_apt[@]}" >/dev/null; }
fi

# the network's objects as the library has them (Makefile), without PostgreSQL
make -s -C "$root" PG_CONFIG="$PG_CONFIG" bench/train_bench

# value KEY FILE: the value of the first "KEY value" line
value() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }

# ---------------------------------------------------------------- the cluster (sql)
sql_ok=
if [ -n "$with_sql" ]; then
	bindir=$("$PG_CONFIG" --bindir)
	echo "building and installing the extension ($PG_CONFIG)"
	make -s -C "$root" PG_CONFIG="$PG_CONFIG" >/dev/null
	make -s -C "$root" PG_CONFIG="$PG_CONFIG" install >/dev/null
	mkdir "$tmp/pg"
	chown postgres "$tmp/pg"
	pgdata=$tmp/pg/data
	runuser -u postgres -- "$bindir/initdb" -D "$pgdata" -A trust >/dev/null
	runuser -u postgres -- "$bindir/pg_ctl" -D "$pgdata" -l "$tmp/pg/log" -w \
		-o "-p $PORT -k $tmp/pg -c listen_addresses='' -c max_wal_size=4GB -c shared_preload_libraries=mnist_ml -c mnist_ml.cdc_tables=''" start >/dev/null
	psql=("$bindir/psql" -X -qAt -v ON_ERROR_STOP=1 -h "$tmp/pg" -p "$PORT" -U postgres -d postgres)
	# the IDX files, uncompressed where the server can read them, sliced into rows in SQL
	for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
		t10k-labels-idx1-ubyte; do
		if [ -f "$DATA/$f.gz" ]; then gzip -dc "$DATA/$f.gz" >"$tmp/$f"; else cp "$DATA/$f" "$tmp/$f"; fi
	done
	chmod 644 "$tmp"/*-ubyte
	"${psql[@]}" <<-EOF
		CREATE EXTENSION mnist_ml;
		SET mnist_ml.progress = off;
		CREATE TABLE fashion_train (id int PRIMARY KEY, pixels bytea NOT NULL, label smallint NOT NULL);
		CREATE TABLE fashion_test (LIKE fashion_train INCLUDING ALL);
		INSERT INTO fashion_train
		SELECT i, substring(img FROM 17 + i * 784 FOR 784), get_byte(lab, 8 + i)
		FROM (SELECT pg_read_binary_file('$tmp/train-images-idx3-ubyte') AS img,
					 pg_read_binary_file('$tmp/train-labels-idx1-ubyte') AS lab) f,
			 generate_series(0, (length(lab) - 8) - 1) AS i;
		INSERT INTO fashion_test
		SELECT i, substring(img FROM 17 + i * 784 FOR 784), get_byte(lab, 8 + i)
		FROM (SELECT pg_read_binary_file('$tmp/t10k-images-idx3-ubyte') AS img,
					 pg_read_binary_file('$tmp/t10k-labels-idx1-ubyte') AS lab) f,
			 generate_series(0, (length(lab) - 8) - 1) AS i;
		VACUUM ANALYZE fashion_train, fashion_test;
		-- CPU seconds of this backend so far (utime + stime of /proc/self/stat)
		CREATE FUNCTION bench_cpu() RETURNS float8 LANGUAGE sql AS \$\$
			SELECT (split_part(s, ' ', 12)::float8 + split_part(s, ' ', 13)::float8) / $(getconf CLK_TCK)
			FROM split_part(pg_read_file('/proc/self/stat'), ') ', 2) AS s
		\$\$;
	EOF
	test_rows=$("${psql[@]}" -c 'SELECT count(*) FROM fashion_test')
	echo "cluster on port $PORT: fashion_train $("${psql[@]}" -c 'SELECT count(*) FROM fashion_train') rows," \
		"fashion_test $test_rows rows"
	sql_ok=1
fi

# sql_train NAME EPOCHS [THREADS]: "call_seconds call_cpu_seconds epoch1_seconds" of one mnist_train call
sql_train() {
	"${psql[@]}" <<-EOF
		SET mnist_ml.progress = off;
		SET mnist_ml.train_threads = ${3:-1};
		DO \$\$
		DECLARE
			t0 timestamptz := clock_timestamp();
			c0 float8 := bench_cpu();
			model_id bigint;
		BEGIN
			model_id := mnist_train('fashion_train', '$1', epochs => $2, batch_size => $BATCH,
							  hidden_units => $HIDDEN, seed => 0);
			RAISE NOTICE 'sqltime % % %', extract(epoch FROM clock_timestamp() - t0), bench_cpu() - c0,
				(SELECT metrics -> 'epochs' -> 0 ->> 'seconds' FROM mnist_models m WHERE m.id = model_id);
		END \$\$;
	EOF
}

# ---------------------------------------------------------------- one epoch, interleaved rounds
echo "one epoch of $DATA, H=$HIDDEN, batch $BATCH, $ROUNDS rounds (machine: $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
# sql_scan: "seconds cpu_seconds" of reading every pixels value of the table once (a floor
# for what mnist_train spends reading its source)
sql_scan() {
	"${psql[@]}" <<-EOF
		DO \$\$
		DECLARE
			t0 timestamptz := clock_timestamp();
			c0 float8 := bench_cpu();
			total bigint;
		BEGIN
			SELECT sum(length(pixels)) INTO total FROM fashion_train;
			RAISE NOTICE 'scantime % %', extract(epoch FROM clock_timestamp() - t0), bench_cpu() - c0;
		END \$\$;
	EOF
}

c_all=() c_cpu=() t_all=() t_cpu=() d_all=() d_cpu=() s_all=() s_cpu=() e_all=() r_all=() r_cpu=()
c2_all=() c2_cpu=() t2_all=() t2_cpu=() e2_all=()
for r in $(seq "$ROUNDS"); do
	"$root/bench/train_bench" "$DATA" 0 1 "$HIDDEN" "$BATCH" >"$tmp/c.out"
	c_all+=("$(value epoch_best "$tmp/c.out")")
	c_cpu+=("$(value epoch_cpu_best "$tmp/c.out")")
	/usr/bin/python3 "$root/bench/train_torch.py" "$DATA" 0 1 "$HIDDEN" "$BATCH" >"$tmp/t.out"
	t_all+=("$(value epoch_best "$tmp/t.out")")
	t_cpu+=("$(value epoch_cpu_best "$tmp/t.out")")
	d_all+=("$(value dataloader_epoch_seconds "$tmp/t.out")")
	d_cpu+=("$(value dataloader_epoch_cpu_seconds "$tmp/t.out")")
	"$root/bench/train_bench" "$DATA" 0 1 "$HIDDEN" "$BATCH" 0 auto "$THREADS" >"$tmp/c2.out"
	c2_all+=("$(value epoch_best "$tmp/c2.out")")
	c2_cpu+=("$(value epoch_cpu_best "$tmp/c2.out")")
	/usr/bin/python3 "$root/bench/train_torch.py" "$DATA" 0 1 "$HIDDEN" "$BATCH" "$THREADS" >"$tmp/t2.out"
	t2_all+=("$(value epoch_best "$tmp/t2.out")")
	t2_cpu+=("$(value epoch_cpu_best "$tmp/t2.out")")
	if [ -n "$sql_ok" ]; then
		read -r _ call cpu epoch < <(sql_train bench_epoch 1 2>&1 | grep -o 'sqltime.*')
		s_all+=("$call")
		s_cpu+=("$cpu")
		e_all+=("$epoch")
		read -r _ _ _ epoch < <(sql_train bench_epoch 1 "$THREADS" 2>&1 | grep -o 'sqltime.*')
		e2_all+=("$epoch")
		read -r _ call cpu < <(sql_scan 2>&1 | grep -o 'scantime.*')
		r_all+=("$call")
		r_cpu+=("$cpu")
	fi
done

rows=$(value rows "$tmp/c.out")
best() { printf '%s\n' "$@" | sort -g | head -1; }
t=$(best "${t_all[@]}")
tc=$(best "${t_cpu[@]}")
# row LABEL WALL CPU ROUNDS: seconds, rows/s and ratio to PyTorch, by wall clock and by CPU time
row() {
	awk -v l="$1" -v w="$2" -v c="$3" -v t="$t" -v tc="$tc" -v all="$4" -v n="$rows" 'BEGIN {
		cpu = c == "" ? sprintf("%8s %8s", "-", "-") : sprintf("%8.3f %8.2f", c, c / tc);
		printf "%-34s %8.3f %8.0f %8.2f  %s   %s\n", l, w, n / w, w / t, cpu, all }'
}
printf '%-34s %8s %8s %8s  %8s %8s   %s\n' "" "wall s" "rows/s" "x torch" "cpu s" "x torch" \
	"wall s of each round"
row "PyTorch 1 thread (baseline)" "$t" "$tc" "${t_all[*]}"
row "PyTorch with a DataLoader" "$(best "${d_all[@]}")" "$(best "${d_cpu[@]}")" "${d_all[*]}"
row "PyTorch $THREADS threads" "$(best "${t2_all[@]}")" "$(best "${t2_cpu[@]}")" "${t2_all[*]}"
row "net.c, data in memory" "$(best "${c_all[@]}")" "$(best "${c_cpu[@]}")" "${c_all[*]}"
row "net.c, $THREADS threads" "$(best "${c2_all[@]}")" "$(best "${c2_cpu[@]}")" "${c2_all[*]}"
if [ -n "$sql_ok" ]; then
	row "mnist_train: its epoch" "$(best "${e_all[@]}")" "" "${e_all[*]}"
	row "mnist_train: its epoch, $THREADS threads" "$(best "${e2_all[@]}")" "" "${e2_all[*]}"
	row "mnist_train: whole call (table)" "$(best "${s_all[@]}")" "$(best "${s_cpu[@]}")" "${s_all[*]}"
	row "(reading the table alone: SELECT)" "$(best "${r_all[@]}")" "$(best "${r_cpu[@]}")" "${r_all[*]}"
fi
speedup() { awk -v a="$(best "${@:2}")" -v l="$1" -v b="$(best $one)" 'BEGIN { printf "  %s %.2fx", l, b / a }'; }
echo -n "speed-up of $THREADS threads over 1 (best epochs; the target is >= 1.6x on 2 idle cores):"
one="${c_all[*]}" speedup net.c "${c2_all[@]}"
one="${t_all[*]}" speedup PyTorch "${t2_all[@]}"
[ -n "$sql_ok" ] && one="${e_all[*]}" speedup mnist_train "${e2_all[@]}"
echo
echo "(best of $ROUNDS interleaved rounds; cpu = the process' CPU time, less sensitive to the" \
	"other work on a shared machine; net.c's CPU path: $(value cpu_path "$tmp/c.out"))"

# ---------------------------------------------------------------- quality
echo
echo "test accuracy after $EPOCHS epochs (issue 3 wants >= 0.86; seed 0):"
"$root/bench/train_bench" "$DATA" "$EPOCHS" 1 "$HIDDEN" "$BATCH" >"$tmp/c.out"
/usr/bin/python3 "$root/bench/train_torch.py" "$DATA" "$EPOCHS" 0 "$HIDDEN" "$BATCH" >"$tmp/t.out"
printf '  %-32s %s\n' "PyTorch" "$(value test_accuracy "$tmp/t.out")"
printf '  %-32s %s\n' "net.c" "$(value test_accuracy "$tmp/c.out")"
if [ -n "$sql_ok" ]; then
	sql_train bench_quality "$EPOCHS" >/dev/null 2>&1
	printf '  %-32s %s\n' "mnist_train + mnist_evaluate" \
		"$("${psql[@]}" -c "SELECT round(accuracy::numeric, 4) FROM mnist_evaluate('fashion_test', 'bench_quality')")"
fi

# ---------------------------------------------------------------- prediction
echo
echo "prediction, the test images (issue 3 wants >= 100,000 rows/s in one backend):"
printf '  %-32s %.2f us/image (CPU time %.2f us)\n' "mnist_net_predict alone" "$(value predict_us "$tmp/c.out")" \
	"$(value predict_cpu_us "$tmp/c.out")"
if [ -n "$sql_ok" ]; then
	for r in $(seq "$ROUNDS"); do
		"${psql[@]}" <<-EOF 2>&1 | grep -o 'predtime.*'
			DO \$\$
			DECLARE
				t0 timestamptz := clock_timestamp();
				c0 float8 := bench_cpu();
				n bigint;
			BEGIN
				SELECT count(*) INTO n FROM fashion_test WHERE mnist_predict(pixels, 'bench_quality') >= 0;
				RAISE NOTICE 'predtime % %', extract(epoch FROM clock_timestamp() - t0), bench_cpu() - c0;
			END \$\$;
		EOF
	done >"$tmp/pred.out"
	ps=$(best $(awk '{print $2}' "$tmp/pred.out"))
	pc=$(best $(awk '{print $3}' "$tmp/pred.out"))
	printf '  %-32s %.0f rows/s, by CPU time %.0f rows/s (best of %s: %s s)\n' \
		"SELECT mnist_predict(pixels)" "$(awk -v s="$ps" -v n="$test_rows" 'BEGIN { print n / s }')" \
		"$(awk -v s="$pc" -v n="$test_rows" 'BEGIN { print n / s }')" "$ROUNDS" \
		"$(awk '{print $2}' "$tmp/pred.out" | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- larger copies of the data
if [ -n "${SCALES:-}" ]; then
	echo
	echo "one epoch on the training rows repeated, best of 2 (rows/s; x 60k: over the 60k epoch's rows/s):"
	printf '  %-28s %10s %12s %10s\n' "" "rows" "rows/s" "x 60k"
	for scale in 1 $SCALES; do
		for who in "net.c" "PyTorch"; do
			for th in 1 "$THREADS"; do
				if [ "$who" = net.c ]; then
					"$root/bench/train_bench" "$DATA" 0 2 "$HIDDEN" "$BATCH" 0 auto "$th" "$scale" >"$tmp/s.out"
				else
					/usr/bin/python3 "$root/bench/train_torch.py" "$DATA" 0 2 "$HIDDEN" "$BATCH" "$th" "$scale" >"$tmp/s.out"
				fi
				rate=$(value rows_per_second "$tmp/s.out")
				[ "$scale" = 1 ] && eval "base_${who%.c}_$th=$rate"
				base=$(eval echo "\$base_${who%.c}_$th")
				printf '  %-28s %10s %12s %10s\n' "$who, $th thread(s)" "$(( $(value rows "$tmp/s.out") * scale ))" \
					"$rate" "$(awk -v a="$rate" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
			done
		done
	done
fi

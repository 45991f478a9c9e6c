#!/bin/bash
# loader_sanitized: mnist2sql built with AddressSanitizer + UndefinedBehaviorSanitizer
# (make tools/mnist2sql-sanitized) over the real digits (raw IDX) and Fashion-MNIST (gzip), every
# bad file of $MNIST_DATA/bad, and real files cut short or corrupted at random places: each good
# input exits 0 with every row, each bad one exits 1 with its one line, and no sanitizer report.
# (Inside the server ASan cannot see overflows within palloc chunks: the programs that run
# without PostgreSQL are checked on their own; bash test/run --sanitize runs everything so.)
source "$(dirname "$0")/../lib.sh"

bin=$HARNESS_ROOT/tools/mnist2sql-sanitized
make -s -C "$HARNESS_ROOT" PG_CONFIG="$PG_CONFIG" tools/mnist2sql-sanitized || fail "build mnist2sql-sanitized"
W=$TEST_TMP/loader_sanitized
rm -rf "$W"
mkdir -p "$W/reports"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$W/reports/ubsan

# load IMAGES LABELS [LEAKS]: runs the loader to $W/out.sql; prints "exit=N rows=N".  Leaks are
# looked for when LEAKS is 1 (good input): a run that fails exits at once, leaving what it
# holds (an open gzFile) to the system.
load() {
	ASAN_OPTIONS=detect_leaks=${3:-0}:log_path=$W/reports/asan \
		"$bin" --images "$1" --labels "$2" --table t --copy -o "$W/out.sql" 2>"$W/err"
	echo "exit=$? rows=$(grep -c '^[0-9]' "$W/out.sql" 2>/dev/null || echo 0)"
	rm -f "$W/out.sql"
}

D=$MNIST_DATA/digits
F=/usr/share/datasets/fashion-mnist
check_eq "$(load "$D/train-images-idx3-ubyte" "$D/train-labels-idx1-ubyte" 1)" "exit=0 rows=8000" "the real digits (raw IDX): 8,000 rows"
check_eq "$(load "$F/train-images-idx3-ubyte.gz" "$F/train-labels-idx1-ubyte.gz" 1)" "exit=0 rows=60000" "Fashion-MNIST (gzip): 60,000 rows"

B=$MNIST_DATA/bad
bad=0
for f in empty bad-magic size-32x32 truncated-header truncated trailing; do
	[ "$(load "$B/$f-images-idx3-ubyte" "$B/ok-labels-idx1-ubyte")" = "exit=1 rows=0" ] && [ "$(wc -l <"$W/err")" = 1 ] || { bad=$((bad + 1)); echo "  $f: $(cat "$W/err")"; }
done
for f in corrupt badcrc truncated; do
	[ "$(load "$B/$f-images-idx3-ubyte.gz" "$B/ok-labels-idx1-ubyte")" = "exit=1 rows=0" ] && [ "$(wc -l <"$W/err")" = 1 ] || { bad=$((bad + 1)); echo "  $f.gz: $(cat "$W/err")"; }
done
for f in mismatch label-12; do
	[ "$(load "$B/ok-images-idx3-ubyte" "$B/$f-labels-idx1-ubyte")" = "exit=1 rows=0" ] && [ "$(wc -l <"$W/err")" = 1 ] || { bad=$((bad + 1)); echo "  $f labels: $(cat "$W/err")"; }
done
check_eq "$bad" 0 "every bad file of $B: exit 1, one line, no output"

# real files cut at random lengths, and with random bytes overwritten (gzip: a corrupt stream;
# raw: the header's counts and sizes)
RANDOM=7
gz=$D/t10k-images-idx3-ubyte
gzip -c "$gz" >"$W/t10k.gz"
size_raw=$(stat -c %s "$gz")
size_gz=$(stat -c %s "$W/t10k.gz")
bad=0
for i in $(seq 1 20); do
	if [ $((i % 2)) = 0 ]; then src=$gz size=$size_raw; else src=$W/t10k.gz size=$size_gz; fi
	cut=$(( (RANDOM * 32768 + RANDOM) % size ))
	head -c "$cut" "$src" >"$W/cut"
	out=$(load "$W/cut" "$D/t10k-labels-idx1-ubyte")
	[ "$out" = "exit=1 rows=0" ] || { bad=$((bad + 1)); echo "  $src cut at $cut: $out $(cat "$W/err")"; }
	cp "$src" "$W/corrupt"
	at=$(( i % 4 == 1 ? RANDOM % 16 : (RANDOM * 32768 + RANDOM) % size ))
	printf "\\x$(printf %02x $((RANDOM % 256)))\\x$(printf %02x $((RANDOM % 256)))" |
		dd of="$W/corrupt" bs=1 seek="$at" conv=notrunc status=none
	out=$(load "$W/corrupt" "$D/t10k-labels-idx1-ubyte")
	case $out in "exit=0 rows=2000" | "exit=1 rows=0") ;; *) bad=$((bad + 1)); echo "  $src corrupted at $at: $out $(cat "$W/err")" ;; esac
done
check_eq "$bad" 0 "20 real files cut short: exit 1; 20 corrupted: exit 0 with every row or exit 1"

reports=$(cat "$W"/reports/* 2>/dev/null)
check_eq "$(ls "$W/reports" | wc -l)" 0 "no sanitizer report${reports:+: $reports}"

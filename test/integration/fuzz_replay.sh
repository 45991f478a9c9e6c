#!/bin/bash
# fuzz_replay: builds the libFuzzer targets (test/fuzz/build) and runs each once over every
# input of its seed corpus (test/fuzz/corpus/TARGET) and its regressions
# (test/fuzz/regressions/TARGET: inputs that once crashed, leaked or hung, kept after the fix).
# Deterministic: no fuzzing, each input executed exactly once; fails on any crash, sanitizer
# report, broken property (abort) or input running over 10 seconds.  Needs no server or
# broker, so it also runs on its own: bash test/integration/fuzz_replay.sh
# Fuzzing itself is bench/fuzz SECONDS.
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(dirname "$here")"
if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
	source "$here/lib.sh"
fi

bin=${FUZZ_BIN:-$root/test/fuzz/bin}
targets=(pixels_csv kafka_properties kafka_properties_file cdc_globs cdc_record weights idx)
rc=0
if ! FUZZ_BIN=$bin nice "$root/test/fuzz/build" "${targets[@]}"; then
	echo "fuzz_replay: build failed"
	rc=1
else
	for t in "${targets[@]}"; do
		mapfile -t inputs < <(find "$root/test/fuzz/corpus/$t" "$root/test/fuzz/regressions/$t" \
			-type f ! -name .gitkeep | sort)
		log=$(mktemp)
		if [ ${#inputs[@]} -eq 0 ]; then
			echo "fuzz_replay: $t: no inputs"
			rc=1
		elif "$bin/$t" -timeout=10 "${inputs[@]}" >"$log" 2>&1 &&
			[ "$(grep -c '^Executed ' "$log")" -eq ${#inputs[@]} ]; then
			echo "fuzz_replay: $t: ${#inputs[@]} inputs ok"
		else
			echo "fuzz_replay: $t FAILED:"
			grep -E -A12 'ERROR:|runtime error|^Running' "$log" | grep -v '^Executed' | tail -40
			rc=1
		fi
		rm -f "$log"
	done
fi
if declare -F pass >/dev/null; then
	if [ $rc = 0 ]; then pass "fuzz_replay"; else fail "fuzz_replay"; fi
fi
exit $rc

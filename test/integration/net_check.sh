#!/bin/bash
# net_check: builds test/net_check.c with src/net.c and src/screen.c against OpenBLAS (serial)
# and runs it: gradients, learning, determinism, predict vs trainer, the prediction screen vs
# the float network.  Needs no PostgreSQL or broker, so it also runs on its own:
# bash test/integration/net_check.sh
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(dirname "$here")"
if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
	source "$here/lib.sh"
fi

tmp="${TEST_TMP:-/tmp}"
out="$(mktemp "$tmp/net_check.XXXXXX")"
blas=/usr/lib/x86_64-linux-gnu/openblas-serial
rc=0
if ! cc -O2 -g -Wall -Wextra -Werror -fno-math-errno -march=native \
	-I/usr/include/x86_64-linux-gnu/openblas-serial -I"$root/src" \
	-o "$out" "$root/test/net_check.c" "$root/src/net.c" "$root/src/screen.c" \
	-L"$blas" -Wl,-rpath,"$blas" -lopenblas -lm; then
	echo "net_check: build failed"
	rc=1
elif ! "$out"; then
	rc=1
fi
rm -f "$out"
if declare -F pass >/dev/null; then
	if [ $rc = 0 ]; then pass "net_check"; else fail "net_check"; fi
fi
exit $rc

#!/bin/bash
# net_check: builds test/net_check (make test/net_check: test/net_check.c with the network's
# objects, as the library has them) and runs it: gradients, learning, determinism, predict vs
# trainer, the prediction screen vs the float network (also over every digits and Fashion-MNIST
# test image of $MNIST_DATA), on every CPU path this machine has, and every path against the
# baseline.  Needs no server or broker, so it also runs on its own:
# bash test/integration/net_check.sh (or make net_check)
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(dirname "$here")"
if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
	source "$here/lib.sh"
fi

rc=0
if ! make -s -C "$root" PG_CONFIG="${PG_CONFIG:-pg_config}" test/net_check; then
	echo "net_check: build failed"
	rc=1
elif ! "$root/test/net_check"; then
	rc=1
fi
if declare -F pass >/dev/null; then
	if [ $rc = 0 ]; then pass "net_check"; else fail "net_check"; fi
fi
exit $rc

#!/bin/bash
# docs_complete: README.md documents every SQL function of the extension and every setting.
# The functions are those the install and upgrade scripts create (src/sql/mnist_ml--*.sql:
# CREATE [OR REPLACE] FUNCTION name), the settings those src/*.c define
# (DefineCustom*Variable("mnist_ml.name")).  Each function needs an entry: a signature line
# starting `name(` (in the SQL API's code blocks); each setting exactly one row `| `name` |` of
# the Configuration table.  README.md must stay within 35,000 bytes (the user reference, not the
# engineering notes: those go to bench/README.md, src/README.md and test/README.md).
# Needs no server or broker, so it also runs on its own: bash test/integration/docs_complete.sh
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(dirname "$here")"
if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
	source "$here/lib.sh"
fi

readme=$root/README.md
rc=0
mapfile -t functions < <(grep -hoiE 'create +(or +replace +)?function +[a-z_0-9]+' \
	"$root"/src/sql/mnist_ml--*.sql | awk '{print $NF}' | sort -u)
mapfile -t settings < <(grep -hoE 'DefineCustom[A-Za-z]+Variable\("mnist_ml\.[a-z_0-9]+"' \
	"$root"/src/*.c | sed -E 's/.*"(mnist_ml\.[a-z_0-9]+)"/\1/' | sort -u)
if [ ${#functions[@]} -lt 10 ] || [ ${#settings[@]} -lt 10 ]; then
	echo "docs_complete: found only ${#functions[@]} functions and ${#settings[@]} settings"
	rc=1
fi
for f in "${functions[@]}"; do
	if ! grep -qE "^$f\(" "$readme"; then
		echo "docs_complete: function $f has no signature line (\"$f(...\") in README.md"
		rc=1
	fi
done
for s in "${settings[@]}"; do
	n=$(grep -cF "| \`$s\` |" "$readme")
	if [ "$n" != 1 ]; then
		echo "docs_complete: setting $s has $n rows in README.md's Configuration table, not 1"
		rc=1
	fi
done
size=$(wc -c <"$readme")
if [ "$size" -gt 35000 ]; then
	echo "docs_complete: README.md is $size bytes, more than 35,000"
	rc=1
fi
[ $rc = 0 ] && echo "docs_complete: ${#functions[@]} functions, ${#settings[@]} settings documented; README.md $size bytes"
if declare -F pass >/dev/null; then
	if [ $rc = 0 ]; then pass "docs_complete"; else fail "docs_complete"; fi
fi
exit $rc

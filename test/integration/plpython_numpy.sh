#!/bin/bash
# A good neighbour (issue 26): with mnist_ml preloaded, PL/Python's numpy (on the system
# libblas.so.3) imports and multiplies matrices correctly in a session that also trains and
# predicts with mnist_ml, numpy first and mnist_ml first, and both sessions train the same
# model.  The installed mnist_ml.so needs no shared BLAS and exports only PostgreSQL's entry
# points and mnist_ names (its static serial OpenBLAS stays private to it); the postmaster maps
# no OpenBLAS, and it and a backend that trained run one thread each.
# Needs postgresql-plpython3-N and python3-numpy (test/install-deps); for a PostgreSQL of one's
# own, plpython3.so and plpython3u.control copied into its pkglibdir and extension directory.
source "$(dirname "$0")/../lib.sh"

S=plpython_numpy_it
D=$MNIST_DATA/digits
lib=$("$PG_CONFIG" --pkglibdir)/mnist_ml.so
if [ ! -e "$("$PG_CONFIG" --pkglibdir)/plpython3.so" ]; then
	fail "PL/Python is not installed in $("$PG_CONFIG" --pkglibdir) (apt-get install postgresql-plpython3-$(bash "$HARNESS_ROOT/test/pg-major"); for a PostgreSQL of one's own copy plpython3.so and plpython3u* there too)"
	exit 1
fi

cleanup() {
	q "DELETE FROM mnist_deployments WHERE name LIKE 'plpy\_it%'; DELETE FROM mnist_models WHERE name LIKE 'plpy\_it%'" >/dev/null 2>&1
	q "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; DROP EXTENSION IF EXISTS plpython3u" >/dev/null 2>&1
}
at_exit cleanup
cleanup

# ---- the library as installed: no shared BLAS needed, nothing but its own names exported
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[[ $needed =~ (openblas|blas|lapack) ]] && fail "mnist_ml.so needs a shared BLAS: $needed" ||
	pass "mnist_ml.so needs no shared BLAS ($needed)"
# (a sanitized build also exports AddressSanitizer's __odr_asan.mnist_ markers)
foreign=$(nm -D --defined-only "$lib" | awk '{ print $3 }' |
	grep -vE '^(Pg_magic_func|_PG_init|_PG_output_plugin_init|pg_finfo_mnist_[a-z_0-9]+|(__odr_asan\.)?mnist_[A-Za-z_0-9]+)$')
[ -z "$foreign" ] && pass "mnist_ml.so exports only PostgreSQL's entry points and mnist_ names ($(nm -D --defined-only "$lib" | wc -l) symbols)" ||
	fail "mnist_ml.so exports foreign symbols: $(head -5 <<<"$foreign" | tr '\n' ' ')"

# ---- the postmaster: mnist_ml preloaded, no OpenBLAS mapped, one thread
postmaster=$(head -n 1 "$PGDATA/postmaster.pid")
grep -q '/mnist_ml\.so$' "/proc/$postmaster/maps" && pass "the postmaster has mnist_ml preloaded" ||
	fail "mnist_ml.so is not mapped in the postmaster $postmaster"
blas=$(grep -oE '[^/ ]*blas[^/ ]*\.so[^/ ]*$' "/proc/$postmaster/maps" | sort -u | tr '\n' ' ')
[ -z "$blas" ] && pass "the postmaster maps no shared BLAS" || fail "the postmaster maps $blas"
check_eq "$(ls "/proc/$postmaster/task" | wc -l)" 1 "the postmaster runs one thread"

# ---- PL/Python with numpy, 300 training digits
q "CREATE EXTENSION plpython3u"
q "CREATE SCHEMA $S"
psql -X -q -v ON_ERROR_STOP=1 -c "SET search_path = $S, public" -f "$D/mnist_test.sql" >/dev/null ||
	fail "load the test digits"
q "CREATE TABLE $S.src AS SELECT pixels, label FROM $S.mnist_test WHERE id <= 300"
psql -X -q -v ON_ERROR_STOP=1 <<-SQL || fail "create the PL/Python functions"
	-- numpy's products (double: dgemm, float: sgemm, a dot product) against plain Python's
	CREATE FUNCTION $S.np_check() RETURNS text LANGUAGE plpython3u AS \$\$
	try:
	    import numpy as np
	except Exception as e:
	    return 'import failed: %s' % ' '.join(str(e).split()).split('Original error was: ')[-1][-300:]
	rng = np.random.default_rng(26)
	a = rng.standard_normal((67, 45))
	b = rng.standard_normal((45, 31))
	ref = np.array([[sum(a[i, k] * b[k, j] for k in range(45)) for j in range(31)] for i in range(67)])
	err64 = float(np.max(np.abs(a @ b - ref)))
	err32 = float(np.max(np.abs(a.astype(np.float32) @ b.astype(np.float32) - ref)))
	dot = float(np.dot(a[:, 0].astype(np.float32), a[:, 1].astype(np.float32)))
	dot_ref = sum(float(x) * float(y) for x, y in zip(a[:, 0], a[:, 1]))
	if err64 < 1e-9 and err32 < 1e-3 and abs(dot - dot_ref) < 1e-3:
	    return 'numpy %s ok' % np.__version__
	return 'numpy %s wrong: float64 %g float32 %g dot %g' % (np.__version__, err64, err32, abs(dot - dot_ref))
	\$\$;
	-- this backend's threads and the shared BLAS it maps
	CREATE FUNCTION $S.threads() RETURNS int LANGUAGE plpython3u AS \$\$
	import os
	return len(os.listdir('/proc/self/task'))
	\$\$;
	CREATE FUNCTION $S.blas_mapped() RETURNS text LANGUAGE plpython3u AS \$\$
	import re
	with open('/proc/self/maps') as f:
	    return ' '.join(sorted({m.group(0) for m in re.finditer(r'[^/\s]*blas[^/\s]*\.so[^/\s]*$', f.read(), re.M)}))
	\$\$;
SQL

session() {	# session SQL...: one psql session, one line per result
	psql -X -qAt -v ON_ERROR_STOP=1 -c "SET mnist_ml.progress = off" "$@" 2>&1
}
train="epochs => 3, seed => 1, hidden_units => 64"
correct() {
	echo "SELECT count(*) FILTER (WHERE mnist_predict(pixels, '$1') = label) FROM $S.src"
}

# numpy first: numpy works, then mnist_ml trains and predicts, then numpy still works
mapfile -t out < <(session -c "SELECT $S.np_check()" \
	-c "SELECT mnist_train('$S.src', 'plpy_it_np_first', $train) > 0" \
	-c "$(correct plpy_it_np_first)" -c "SELECT $S.np_check()")
echo "  numpy first: ${out[*]}"
[[ ${out[0]} == numpy*ok ]] && pass "numpy first: numpy imports and multiplies correctly" ||
	fail "numpy first: ${out[0]:-nothing}"
check_eq "${out[1]}" t "numpy first: mnist_train trained"
[[ ${out[2]} =~ ^[0-9]+$ ]] && [ "${out[2]}" -ge 200 ] && pass "numpy first: mnist_predict: ${out[2]}/300 training digits right" ||
	fail "numpy first: mnist_predict: ${out[2]:-nothing}"
[[ ${out[3]} == numpy*ok ]] && pass "numpy first: numpy still correct after mnist_ml trained" ||
	fail "numpy first, after training: ${out[3]:-nothing}"

# mnist_ml first: train and predict, this backend's threads and BLAS, then numpy, then predict again
mapfile -t out < <(session -c "SELECT mnist_train('$S.src', 'plpy_it_ml_first', $train) > 0" \
	-c "$(correct plpy_it_ml_first)" -c "SELECT $S.threads()" -c "SELECT 'maps: ' || $S.blas_mapped()" \
	-c "SELECT $S.np_check()" -c "$(correct plpy_it_ml_first)")
echo "  mnist_ml first: ${out[*]}"
check_eq "${out[0]}" t "mnist_ml first: mnist_train trained"
[[ ${out[1]} =~ ^[0-9]+$ ]] && [ "${out[1]}" -ge 200 ] && pass "mnist_ml first: mnist_predict: ${out[1]}/300 training digits right" ||
	fail "mnist_ml first: mnist_predict: ${out[1]:-nothing}"
check_eq "${out[2]}" 1 "the backend that trained runs one thread"
check_eq "${out[3]}" "maps: " "the backend that trained maps no shared BLAS"
[[ ${out[4]} == numpy*ok ]] && pass "mnist_ml first: numpy imports and multiplies correctly" ||
	fail "mnist_ml first: ${out[4]:-nothing}"
check_eq "${out[5]}" "${out[1]}" "mnist_ml first: the same predictions with numpy loaded"

check_eq "$(q "SELECT count(DISTINCT md5(weights)) FROM mnist_models WHERE name LIKE 'plpy\_it%'")" 1 \
	"both orders trained the same model, bit for bit"

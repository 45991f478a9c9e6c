# mnist_ml: PGXS build of the extension library, its install script and the mnist2sql loader.

EXTENSION = mnist_ml
EXTVERSION = 1.2

MODULE_big = mnist_ml
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script of the current version is assembled from one fragment per concern
# (src/sql/NN_*.sql).  Released versions' scripts and the upgrade scripts between them are
# committed as they shipped: src/sql/mnist_ml--1.0.sql and --1.1.sql are those versions' install
# scripts byte for byte.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(sort $(wildcard src/sql/$(EXTENSION)--*.sql))

# The loader is a frontend program installed into $(bindir).
SCRIPTS_built = tools/mnist2sql

# pg_regress: every sql/*.sql is a test, run in name order.  make installcheck runs them against
# the server PGHOST, PGPORT and PGUSER (a superuser) name, configured as the README says, with
# the data test/prepare-data made in MNIST_DATA; test/installcheck-prep checks all that first.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_PREP = installcheck-prep
export MNIST_DATA ?= /var/cache/mnist_ml/data

# OpenBLAS's serial build (the pthread and OpenMP builds start threads when loaded, which for a
# preloaded library would happen inside the postmaster before it forks), linked statically with
# its symbols hidden: mnist_ml.so needs no shared BLAS and exports none of OpenBLAS's names, so
# the BLAS that numpy (PL/Python), PL/R or another library loads into the same server keeps its
# own internals, and mnist_ml keeps its serial kernels whatever else is loaded.  Found through
# the pkg-config file of Debian's serial build for this architecture (x86_64-linux-gnu,
# aarch64-linux-gnu, ...); for one's own serial OpenBLAS:
# make OPENBLAS_LIBDIR=/its/lib OPENBLAS_INC=/its/include.  A threaded archive (one with
# OpenBLAS's thread server, blas_server*.o) is refused.
OPENBLAS_PC = PKG_CONFIG_PATH=/usr/lib/$(shell $(CC) -print-multiarch)/openblas-serial/pkgconfig pkg-config openblas
OPENBLAS_LIBDIR := $(patsubst %/,%,$(shell $(OPENBLAS_PC) --variable=libdir 2>/dev/null))
OPENBLAS_INC := $(patsubst %/,%,$(shell $(OPENBLAS_PC) --variable=includedir 2>/dev/null))
OPENBLAS_A = $(OPENBLAS_LIBDIR)/libopenblas.a
ifneq ($(filter-out clean distclean,$(or $(MAKECMDGOALS),all)),)
ifeq ($(wildcard $(OPENBLAS_A)),)
$(error no static serial OpenBLAS (libopenblas.a) found: install libopenblas-serial-dev, or set OPENBLAS_LIBDIR and OPENBLAS_INC)
endif
endif

# Portable by default: the library targets x86-64-v2 (every x86-64 server CPU since about
# 2009), and the network's hot loops are compiled once more for AVX2 and for AVX-512
# (src/net_avx2.c, net_avx512.c); net.c runs the best this CPU has.  For the machine that
# builds it only: make OPTFLAGS=-march=native.
ifeq ($(shell uname -m),x86_64)
OPTFLAGS = -march=x86-64-v2
NET_AVX2_FLAGS = -mavx2 -mfma
NET_AVX512_FLAGS = -mavx512f -mavx512cd -mavx512bw -mavx512dq -mavx512vl -mfma
endif

PG_CPPFLAGS = -I$(OPENBLAS_INC) -Isrc
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -Wno-cast-function-type -fno-math-errno $(OPTFLAGS)
# Each binary links what it calls, no more (readelf -d shows the NEEDED entries): the library
# librdkafka and libm (OpenBLAS's cblas_sgemm and what it calls are inside it); the network
# alone libm; train_bench also zlib (it reads the gzip IDX files); mnist2sql zlib only.
OPENBLAS_LINK = -Wl,--exclude-libs,ALL $(OPENBLAS_A) -lm
SHLIB_LINK = $(shell pkg-config --libs rdkafka) $(OPENBLAS_LINK)

# make SANITIZE=1: everything (the library, mnist2sql, test/net_check, bench/train_bench) with
# AddressSanitizer and UndefinedBehaviorSanitizer; undefined behaviour aborts.  The library then
# needs the sanitizer runtimes loaded first into the server (LD_PRELOAD): bash test/run --sanitize.
# The flags are recorded in .build-flags, on which every target depends, so switching between
# a plain and a sanitized build rebuilds everything.
SANITIZE ?= 0
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ifeq ($(SANITIZE),1)
PG_CFLAGS += $(SANITIZE_FLAGS)
SHLIB_LINK += $(SANITIZE_FLAGS)
endif
# librdkafka of one's own (PKG_CONFIG_PATH names its rdkafka.pc, e.g. test/build-deps's) is
# found at run time through an rpath; the system's needs none.
RDKAFKA_LIBDIR := $(shell pkg-config --variable=libdir rdkafka)
comma := ,
SHLIB_LINK += $(if $(filter-out /usr/lib% /lib%,$(RDKAFKA_LIBDIR)),-Wl$(comma)-rpath$(comma)$(RDKAFKA_LIBDIR))

# Switching flags, PostgreSQL (PG_CONFIG) or librdkafka rebuilds everything.
BUILD_FLAGS = SANITIZE=$(SANITIZE) OPTFLAGS=$(OPTFLAGS) PG=$(shell $(or $(PG_CONFIG),pg_config) --version | tr -d ' ') RDKAFKA=$(RDKAFKA_LIBDIR) OPENBLAS=$(OPENBLAS_A)

# The network alone, without PostgreSQL: test/net_check (make net_check) checks it on every CPU
# path this machine has, bench/train_bench (bench/train.sh) times it.
NET_OBJS = src/net.o src/net_pool.o src/screen.o src/net_baseline.o src/net_avx2.o src/net_avx512.o
NET_PROGRAMS = test/net_check bench/train_bench

EXTRA_CLEAN = $(DATA_built) tools/mnist2sql tools/mnist2sql-sanitized results regression.diffs regression.out \
	test/fuzz/bin $(NET_PROGRAMS) $(NET_PROGRAMS:=.o) .build-flags .openblas-serial

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The tests run the psql and the mnist2sql of the installation under test.
installcheck: export PATH := $(bindir):$(PATH)

.PHONY: installcheck-prep
installcheck-prep:
	test/installcheck-prep

$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard src/sql/[0-9]*.sql))
	cat $^ > $@

src/net_avx2.o: override CFLAGS += $(NET_AVX2_FLAGS)
src/net_avx2.bc: BITCODE_CFLAGS += $(NET_AVX2_FLAGS)
src/net_avx512.o: override CFLAGS += $(NET_AVX512_FLAGS)
src/net_avx512.bc: BITCODE_CFLAGS += $(NET_AVX512_FLAGS)

$(NET_PROGRAMS): %: %.o $(NET_OBJS)
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(OPENBLAS_LINK) $(NET_PROGRAM_LIBS)
bench/train_bench: NET_PROGRAM_LIBS = -lz

.PHONY: net_check
net_check: test/net_check
	test/net_check

MNIST2SQL_SRCS = tools/mnist2sql.c tools/idx.c
tools/mnist2sql: $(MNIST2SQL_SRCS) tools/idx.h src/image.h
	$(CC) $(CFLAGS) -Wall -Wextra -O2 -o $@ $(MNIST2SQL_SRCS) -lz

# Debian's PostgreSQL keeps its programs in /usr/lib/postgresql/N/bin, which is not on PATH
# (postgresql-common puts its client programs on PATH through links in /usr/bin).  For such a
# bindir make install also links mnist2sql into BINDIR_LINK, /usr/local/bin by default, so the
# command works as the README writes it; make BINDIR_LINK= links nothing, and a bindir of
# one's own (normally on PATH already) gets a link only if BINDIR_LINK names a directory, and so
# does a staged install (DESTDIR, a packager's), which installs nothing outside PGXS's directories.
# A file there that is not this link is never replaced.
BINDIR_LINK ?= $(if $(DESTDIR),,$(if $(filter /usr/lib/postgresql/%/bin,$(bindir)),/usr/local/bin))
MNIST2SQL_LINK = $(DESTDIR)$(BINDIR_LINK)/mnist2sql

.PHONY: install-mnist2sql-link uninstall-mnist2sql-link
install: install-mnist2sql-link
uninstall: uninstall-mnist2sql-link
install-mnist2sql-link:
ifneq ($(BINDIR_LINK),)
	@if [ -e '$(MNIST2SQL_LINK)' ] && [ ! -L '$(MNIST2SQL_LINK)' ]; then \
		echo "make install: $(MNIST2SQL_LINK) exists and is not a link: not replaced (BINDIR_LINK= installs no link)" >&2; \
		exit 1; \
	fi
	$(MKDIR_P) '$(DESTDIR)$(BINDIR_LINK)'
	ln -sfn '$(bindir)/mnist2sql' '$(MNIST2SQL_LINK)'
endif
uninstall-mnist2sql-link:
ifneq ($(BINDIR_LINK),)
	if [ "$$(readlink '$(MNIST2SQL_LINK)')" = '$(bindir)/mnist2sql' ]; then rm -f '$(MNIST2SQL_LINK)'; fi
endif

# The loader with the sanitizers whatever SANITIZE says (test/integration/loader_sanitized.sh).
tools/mnist2sql-sanitized: $(MNIST2SQL_SRCS) tools/idx.h src/image.h
	$(CC) $(CFLAGS) $(SANITIZE_FLAGS) -Wall -Wextra -O2 -o $@ $(MNIST2SQL_SRCS) -lz

# Every object depends on the project's headers (PGXS tracks no header dependencies here)
# and on the build's flags.
$(OBJS) $(NET_PROGRAMS:=.o): $(wildcard src/*.h) .build-flags
$(NET_PROGRAMS) tools/mnist2sql $(shlib): .build-flags
# .build-flags is rewritten by its rule (always run, FORCE) only when the flags differ, so its
# time changes only then; nothing is written while the Makefile is read.
.build-flags: FORCE
	@if [ "$$(cat $@ 2>/dev/null)" != '$(BUILD_FLAGS)' ]; then echo '$(BUILD_FLAGS)' >$@; fi
.PHONY: FORCE
FORCE:

# The OpenBLAS archive is checked once, and again when it changes (the binaries are then relinked).
$(NET_PROGRAMS) $(shlib): .openblas-serial
.openblas-serial: $(OPENBLAS_A)
	@if ar t '$<' | grep -q '^blas_server'; then \
		echo "$<: a threaded OpenBLAS (it has blas_server): mnist_ml needs the serial build" >&2; exit 1; \
	fi
	touch $@

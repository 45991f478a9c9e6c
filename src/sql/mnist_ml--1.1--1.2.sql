-- mnist_ml 1.1 -> 1.2.  Every SQL change since 1.1 goes here until 1.2 is released; the result
-- must equal a fresh 1.2 install (test/integration/extension_upgrade.sh compares the catalogs).
\echo Use "ALTER EXTENSION mnist_ml UPDATE TO '1.2'" to load this file. \quit

-- mnist_cdc_status: which table's missing topic the stream waits for, why, since when.  The
-- view is replaced with columns added at the end, so that users' views on it survive.
CREATE FUNCTION mnist_cdc_waiting(
    OUT waiting_table text, OUT waiting_reason text, OUT waiting_since timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'mnist_cdc_waiting'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_waiting() IS
'The captured table whose missing topic the change data capture stream waits for, why, and since when (NULLs when none).';

CREATE OR REPLACE VIEW mnist_cdc_status AS
    SELECT s.*, w.waiting_table, w.waiting_reason, w.waiting_since
    FROM mnist_cdc_status() s, mnist_cdc_waiting() w;
COMMENT ON VIEW mnist_cdc_status IS
'One row describing change data capture to Kafka (see mnist_cdc_status() and mnist_cdc_waiting()).';

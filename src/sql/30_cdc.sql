-- Change data capture to Kafka: status, ad hoc snapshot, slot removal.

CREATE FUNCTION mnist_cdc_status(
    OUT slot_name text, OUT state text, OUT pid integer, OUT database text,
    OUT confirmed_lsn pg_lsn, OUT lag_bytes bigint,
    OUT produced bigint, OUT acknowledged bigint, OUT failed bigint,
    OUT last_error text, OUT last_error_at timestamptz, OUT broker_reachable boolean,
    OUT skipped bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'mnist_cdc_status_1_1'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_status() IS
'State of the change data capture worker: its slot, confirmed LSN, lag, message counters since server start, last error, broker reachability, captured rows skipped (each with a WARNING).';

CREATE FUNCTION mnist_cdc_waiting(
    OUT waiting_table text, OUT waiting_reason text, OUT waiting_since timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'mnist_cdc_waiting'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_waiting() IS
'The captured table whose missing topic the change data capture stream waits for, why, and since when (NULLs when none).';

-- 1.2 added the waiting_* columns at the end (CREATE OR REPLACE VIEW: views on it survive)
CREATE VIEW mnist_cdc_status AS
    SELECT s.*, w.waiting_table, w.waiting_reason, w.waiting_since
    FROM mnist_cdc_status() s, mnist_cdc_waiting() w;
COMMENT ON VIEW mnist_cdc_status IS
'One row describing change data capture to Kafka (see mnist_cdc_status() and mnist_cdc_waiting()).';
-- everybody may read it, as everybody may call the function behind it
GRANT SELECT ON mnist_cdc_status TO PUBLIC;

CREATE FUNCTION mnist_cdc_snapshot(tbl regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_cdc_snapshot'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_snapshot(regclass) IS
'Sends every current row of a table (label, pixels) to its topic <prefix>.<schema>.<table> as snapshot reads (header op=r); returns the number of messages the broker acknowledged.';

CREATE FUNCTION mnist_cdc_drop_slot()
RETURNS boolean
AS 'MODULE_PATHNAME', 'mnist_cdc_drop_slot'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_drop_slot() IS
'Drops the change data capture slot mnist_ml_cdc and the WAL it retains; stop CDC first (mnist_ml.cdc_tables = ''''). A later start takes a new initial snapshot.';
REVOKE ALL ON FUNCTION mnist_cdc_drop_slot() FROM PUBLIC;
-- publishing to the captured topics is for operators (GRANT EXECUTE to allow others)
REVOKE ALL ON FUNCTION mnist_cdc_snapshot(regclass) FROM PUBLIC;

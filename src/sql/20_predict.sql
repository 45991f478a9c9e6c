
-- Inference and images (src/predict.c).
--
-- A prediction costs about 0.5 to 2 us, some 100 times a built-in operator (cpu_operator_cost):
-- COST 100 lets the planner see that, so that scoring a large table runs in parallel workers
-- (each loads the model into its own cache) and cheap conditions are tested first.

CREATE FUNCTION mnist_predict(pixels bytea, model_name text DEFAULT 'default')
RETURNS smallint
AS 'MODULE_PATHNAME', 'mnist_predict'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION mnist_predict(bytea, text) IS 'The class 0..9 that the model serving that name (its deployed model, else its newest) predicts for 784 pixels.';

CREATE FUNCTION mnist_predict_proba(pixels bytea, model_name text DEFAULT 'default')
RETURNS float4[]
AS 'MODULE_PATHNAME', 'mnist_predict_proba'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION mnist_predict_proba(bytea, text) IS 'The 10 softmax probabilities of the classes 0..9 for 784 pixels.';

CREATE FUNCTION mnist_evaluate(
	source regclass,
	model_name text DEFAULT 'default',
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label')
RETURNS TABLE(rows bigint, loss float8, accuracy float8)
AS 'MODULE_PATHNAME', 'mnist_evaluate'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 1;
COMMENT ON FUNCTION mnist_evaluate(regclass, text, name, name) IS 'Number of rows, mean cross-entropy and accuracy of a model on the labelled rows of source (read as the caller).';

CREATE FUNCTION mnist_confusion_matrix(
	source regclass,
	model_name text DEFAULT 'default',
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label')
RETURNS TABLE(label smallint, predicted smallint, count bigint)
AS 'MODULE_PATHNAME', 'mnist_confusion_matrix'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 100;
COMMENT ON FUNCTION mnist_confusion_matrix(regclass, text, name, name) IS 'For each of the 100 (label, predicted) pairs, how many rows of source the model classifies so.';

CREATE FUNCTION mnist_evaluate(
	source regclass,
	model_id bigint,
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label')
RETURNS TABLE(rows bigint, loss float8, accuracy float8)
AS 'MODULE_PATHNAME', 'mnist_evaluate_id'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 1;
COMMENT ON FUNCTION mnist_evaluate(regclass, bigint, name, name) IS 'mnist_evaluate of a stored model given by id, deployed or not (to compare a candidate).';

CREATE FUNCTION mnist_confusion_matrix(
	source regclass,
	model_id bigint,
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label')
RETURNS TABLE(label smallint, predicted smallint, count bigint)
AS 'MODULE_PATHNAME', 'mnist_confusion_matrix_id'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 100;
COMMENT ON FUNCTION mnist_confusion_matrix(regclass, bigint, name, name) IS 'mnist_confusion_matrix of a stored model given by id, deployed or not.';

CREATE FUNCTION mnist_classify() RETURNS trigger
AS 'MODULE_PATHNAME', 'mnist_classify'
LANGUAGE C;
COMMENT ON FUNCTION mnist_classify() IS 'Row trigger: BEFORE INSERT OR UPDATE OF pixels ... FOR EACH ROW EXECUTE FUNCTION mnist_classify(''pixels'', ''predicted'' [, ''model_name'']) stores the prediction of each new row.';

CREATE FUNCTION mnist_pixels("values" int[])
RETURNS bytea
AS 'MODULE_PATHNAME', 'mnist_pixels'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION mnist_pixels(int[]) IS 'The pixels bytea of 784 grey levels 0..255 (row by row).';

CREATE FUNCTION mnist_render(pixels bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'mnist_render'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION mnist_render(bytea) IS 'The image as 28 lines of text shading, to look at it in psql.';

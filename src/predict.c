/*
 * predict.c
 *		Inference and images: mnist_predict, mnist_predict_proba, mnist_evaluate,
 *		mnist_confusion_matrix (of the model serving a name, or of a stored model by id), the
 *		mnist_classify() trigger, mnist_pixels and mnist_render.
 *
 * Per-row functions keep the model they use in fn_extra: the first call of a query asks
 * mnist_model_get() (which accepts invalidations, so a model stored meanwhile by any session
 * is seen), later rows only compare the model name.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "coltype.h"
#include "model.h"
#include "model_cache.h"
#include "net.h"
#include "source.h"

/* fn_extra of mnist_predict and mnist_predict_proba: the model last used by this call site */
typedef struct PredictCache
{
	MnistModel *model;
	MemoryContext holder;		/* holds model (mnist_model_get): reset when the name changes */
	int			name_len;
	char		name[MNIST_MAX_NAME_BYTES];
} PredictCache;

/* The model named by a text argument, looked up once per query and name. */
static MnistModel *
model_for_call(FunctionCallInfo fcinfo, text *name)
{
	PredictCache *c = (PredictCache *) fcinfo->flinfo->fn_extra;
	int			len = VARSIZE_ANY_EXHDR(name);

	if (c != NULL && c->name_len == len && memcmp(c->name, VARDATA_ANY(name), len) == 0)
		return c->model;
	if (c == NULL)
	{
		c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PredictCache));
		c->holder = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "mnist_ml model holder",
										  ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = c;
	}
	/* the model of the name before is not held any more */
	c->name_len = -1;
	MemoryContextReset(c->holder);
	c->model = mnist_model_get(text_to_cstring(name), c->holder);
	/* a longer name is no model's (mnist_model_get said so) */
	c->name_len = len;
	memcpy(c->name, VARDATA_ANY(name), len);
	return c->model;
}

/*
 * The 784 bytes of a pixels value (ERROR for another length).  The length is read from the
 * header or the toast pointer first: a value of another size is never detoasted.
 */
static const uint8 *
pixels_data(Datum value)
{
	Size		len = toast_raw_datum_size(value) - VARHDRSZ;

	if (len != MNIST_PIXELS)
		mnist_source_bad_pixels_length(len);
	return (const uint8 *) VARDATA_ANY(DatumGetByteaPP(value));
}

PG_FUNCTION_INFO_V1(mnist_predict);

/* mnist_predict(pixels bytea, model_name text) RETURNS smallint */
Datum
mnist_predict(PG_FUNCTION_ARGS)
{
	const uint8 *pixels = pixels_data(PG_GETARG_DATUM(0));
	MnistModel *model = model_for_call(fcinfo, PG_GETARG_TEXT_PP(1));

	PG_RETURN_INT16((int16) mnist_model_classify(model, pixels));
}

PG_FUNCTION_INFO_V1(mnist_predict_proba);

/* mnist_predict_proba(pixels bytea, model_name text) RETURNS float4[] */
Datum
mnist_predict_proba(PG_FUNCTION_ARGS)
{
	const uint8 *pixels = pixels_data(PG_GETARG_DATUM(0));
	MnistModel *model = model_for_call(fcinfo, PG_GETARG_TEXT_PP(1));
	float		probs[NET_OUTPUTS];
	Datum		elems[NET_OUTPUTS];

	mnist_net_predict(&model->net, pixels, model->scratch, probs, NULL);
	for (int k = 0; k < NET_OUTPUTS; k++)
		elems[k] = Float4GetDatum(probs[k]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, NET_OUTPUTS, FLOAT4OID, sizeof(float4),
										  true, TYPALIGN_INT));
}

/* Running totals of an evaluation. */
typedef struct EvalState
{
	MnistModel *model;
	double		loss_sum;
	int64		correct;
	int64		counts[MNIST_CLASSES][MNIST_CLASSES];	/* [label][predicted] */
} EvalState;

/* SourceRowFn scoring one row. */
static void
eval_row(void *arg, const uint8 *pixels, int label)
{
	EvalState  *st = (EvalState *) arg;
	float		logits[NET_OUTPUTS];
	int			predicted = mnist_net_predict(&st->model->net, pixels, st->model->scratch, NULL, logits);

	st->loss_sum += mnist_net_cross_entropy(logits, label);
	st->correct += (predicted == label);
	st->counts[label][predicted]++;
}

/*
 * Scores every row of a source with a model; arguments as mnist_evaluate's, the model given by
 * name (the one serving it) or, when by_id, by its id.
 */
static int64
evaluate(FunctionCallInfo fcinfo, EvalState *st, bool by_id)
{
	memset(st, 0, sizeof(EvalState));
	st->model = by_id ? mnist_model_load_id(PG_GETARG_INT64(1), false) :
		mnist_model_get(text_to_cstring(PG_GETARG_TEXT_PP(1)), CurrentMemoryContext);
	return mnist_source_scan(PG_GETARG_OID(0), NameStr(*PG_GETARG_NAME(2)),
					   NameStr(*PG_GETARG_NAME(3)), eval_row, st);
}

/* mnist_evaluate's result */
static Datum
evaluate_result(FunctionCallInfo fcinfo, bool by_id)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EvalState	st;
	int64		rows;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	InitMaterializedSRF(fcinfo, 0);
	rows = evaluate(fcinfo, &st, by_id);
	values[0] = Int64GetDatum(rows);
	values[1] = Float8GetDatum(rows > 0 ? st.loss_sum / rows : 0);
	values[2] = Float8GetDatum(rows > 0 ? (double) st.correct / rows : 0);
	nulls[1] = nulls[2] = (rows == 0);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(mnist_evaluate);

/*
 * mnist_evaluate(source regclass, model_name text, pixels_column name, label_column name)
 * RETURNS TABLE(rows bigint, loss float8, accuracy float8)
 */
Datum
mnist_evaluate(PG_FUNCTION_ARGS)
{
	return evaluate_result(fcinfo, false);
}

PG_FUNCTION_INFO_V1(mnist_evaluate_id);

/* mnist_evaluate(source regclass, model_id bigint, pixels_column name, label_column name) */
Datum
mnist_evaluate_id(PG_FUNCTION_ARGS)
{
	return evaluate_result(fcinfo, true);
}

/* mnist_confusion_matrix's result: all 100 pairs, in order */
static Datum
confusion_result(FunctionCallInfo fcinfo, bool by_id)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EvalState	st;

	InitMaterializedSRF(fcinfo, 0);
	evaluate(fcinfo, &st, by_id);
	for (int l = 0; l < MNIST_CLASSES; l++)
		for (int p = 0; p < MNIST_CLASSES; p++)
		{
			Datum		values[3] = {Int16GetDatum(l), Int16GetDatum(p),
			Int64GetDatum(st.counts[l][p])};
			bool		nulls[3] = {false, false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(mnist_confusion_matrix);

/*
 * mnist_confusion_matrix(source regclass, model_name text, pixels_column name,
 * label_column name) RETURNS TABLE(label smallint, predicted smallint, count bigint)
 */
Datum
mnist_confusion_matrix(PG_FUNCTION_ARGS)
{
	return confusion_result(fcinfo, false);
}

PG_FUNCTION_INFO_V1(mnist_confusion_matrix_id);

/* mnist_confusion_matrix(source regclass, model_id bigint, pixels_column name, label_column name) */
Datum
mnist_confusion_matrix_id(PG_FUNCTION_ARGS)
{
	return confusion_result(fcinfo, true);
}

/* fn_extra of mnist_classify: columns and model resolved once per statement and trigger */
typedef struct ClassifyCache
{
	Oid			tgoid;
	int			pixels_attno;
	int			predicted_attno;
	Oid			predicted_type;
	MnistModel *model;
} ClassifyCache;

/*
 * Attribute number of a trigger argument's column, which must hold pixels (bytea) or, when
 * !pixels, an integer (coltype.h).
 */
static int
classify_column(Relation rel, const char *column, bool pixels)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			attno = SPI_fnumber(desc, column);
	Oid			type;

	if (attno <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, RelationGetRelationName(rel))));
	type = TupleDescAttr(desc, attno - 1)->atttypid;
	if (pixels ? !mnist_pixels_type_ok(type) : !OidIsValid(mnist_label_type(type)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" has type %s, not %s",
						column, RelationGetRelationName(rel),
						format_type_be(type),
						pixels ? "bytea" : "smallint, integer or bigint")));
	return attno;
}

PG_FUNCTION_INFO_V1(mnist_classify);

/*
 * Trigger function: BEFORE INSERT OR UPDATE OF pixels ... FOR EACH ROW EXECUTE FUNCTION
 * mnist_classify('pixels', 'predicted' [, 'model_name']) stores the prediction (NULL for
 * NULL pixels) in the predicted column of each new row.
 */
Datum
mnist_classify(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	ClassifyCache *c = (ClassifyCache *) fcinfo->flinfo->fn_extra;
	HeapTuple	tuple;
	TupleDesc	desc;
	Datum		value;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mnist_classify() must be called as a trigger")));
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mnist_classify() must be fired BEFORE INSERT OR UPDATE FOR EACH ROW")));
	tuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);

	if (c == NULL || c->tgoid != td->tg_trigger->tgoid)
	{
		Trigger    *tg = td->tg_trigger;
		ClassifyCache tmp;

		if (tg->tgnargs < 2 || tg->tgnargs > 3)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("mnist_classify() takes 2 or 3 arguments, not %d", tg->tgnargs),
					 errhint("EXECUTE FUNCTION mnist_classify('pixels', 'predicted' [, 'model_name'])")));
		tmp.tgoid = tg->tgoid;
		tmp.pixels_attno = classify_column(td->tg_relation, tg->tgargs[0], true);
		tmp.predicted_attno = classify_column(td->tg_relation, tg->tgargs[1], false);
		tmp.predicted_type = mnist_label_type(TupleDescAttr(desc, tmp.predicted_attno - 1)->atttypid);
		tmp.model = mnist_model_get(tg->tgnargs == 3 ? tg->tgargs[2] : "default",
									fcinfo->flinfo->fn_mcxt);
		if (c == NULL)
			c = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(ClassifyCache));
		*c = tmp;
		fcinfo->flinfo->fn_extra = c;
	}

	value = heap_getattr(tuple, c->pixels_attno, desc, &isnull);
	if (!isnull)
	{
		int			k = mnist_model_classify(c->model, pixels_data(value));

		value = c->predicted_type == INT2OID ? Int16GetDatum(k) :
			c->predicted_type == INT4OID ? Int32GetDatum(k) : Int64GetDatum(k);
	}
	tuple = heap_modify_tuple_by_cols(tuple, desc, 1, &c->predicted_attno, &value, &isnull);
	return PointerGetDatum(tuple);
}

PG_FUNCTION_INFO_V1(mnist_pixels);

/* mnist_pixels(values int[]) RETURNS bytea: 784 values 0..255 -> the pixels bytea */
Datum
mnist_pixels(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	const int32 *v = (const int32 *) ARR_DATA_PTR(a);
	bytea	   *result;
	uint8	   *d;

	if (n != MNIST_PIXELS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mnist_pixels() needs %d values, not %d", MNIST_PIXELS, n)));
	if (array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pixel values must not be null")));
	result = (bytea *) palloc(VARHDRSZ + MNIST_PIXELS);
	SET_VARSIZE(result, VARHDRSZ + MNIST_PIXELS);
	d = (uint8 *) VARDATA(result);
	for (int i = 0; i < MNIST_PIXELS; i++)
	{
		if (v[i] < 0 || v[i] > 255)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("pixel value %d at position %d is out of range 0..255", v[i], i + 1)));
		d[i] = (uint8) v[i];
	}
	PG_RETURN_BYTEA_P(result);
}

PG_FUNCTION_INFO_V1(mnist_render);

/* mnist_render(pixels bytea) RETURNS text: 28 lines, two characters per pixel */
Datum
mnist_render(PG_FUNCTION_ARGS)
{
	static const char ramp[] = " .:-=+*#%@";
	const uint8 *pixels = pixels_data(PG_GETARG_DATUM(0));
	StringInfoData buf;

	initStringInfo(&buf);
	for (int y = 0; y < MNIST_SIDE; y++)
	{
		if (y > 0)
			appendStringInfoChar(&buf, '\n');
		for (int x = 0; x < MNIST_SIDE; x++)
		{
			char		ch = ramp[pixels[y * MNIST_SIDE + x] * (sizeof(ramp) - 1) / 256];

			appendStringInfoChar(&buf, ch);
			appendStringInfoChar(&buf, ch);
		}
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

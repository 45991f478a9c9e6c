/*
 * coltype.h
 *		The column types of image tables, one rule for every reader: training and evaluation
 *		sources, the classify trigger, the output plugin and CDC snapshots.
 */
#ifndef MNIST_COLTYPE_H
#define MNIST_COLTYPE_H

/* True when a pixels column of type typid is accepted: bytea, or a domain over it. */
extern bool mnist_pixels_type_ok(Oid typid);

/*
 * The integer type a label (or predicted) column of type typid holds: INT2OID, INT4OID or
 * INT8OID, also through domains over them; InvalidOid for any other type.
 */
extern Oid	mnist_label_type(Oid typid);

/* The value of a label datum of that type (mnist_label_type's result). */
extern int64 mnist_label_value(Datum d, Oid label_type);

#endif							/* MNIST_COLTYPE_H */

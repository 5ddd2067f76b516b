/*-------------------------------------------------------------------------
 *
 * dynbgw_result_keep.c
 *		What a run of a worker launched with keep_result keeps: the rows of
 *		its last statement, written out for the result store.
 *
 * The rows are written as the statement returns them, into the run's
 * memory, each value in its type's binary send format, as a client would
 * receive it.  That format is exact whatever the run set DateStyle,
 * extra_float_digits or TimeZone to, and the receive functions that read it
 * back check what they read: a row type or array changed since refuses
 * values of the old shape.  Its text is in the worker's client encoding,
 * which the result records, and so are the values of a type without a
 * send function, kept in their text form; names are in the database's.
 * An anonymous record or array, which no other process could read back,
 * is kept as json.  A
 * result larger than dynbgw.max_result_size fails the statement, and so
 * the run, as soon as it gets there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "dynbgw.h"

typedef struct DynbgwKeeper
{
	DestReceiver pub;
	DynbgwResultInfo info;
	StringInfoData data;		/* columns, then rows */
	MemoryContext context;		/* of the run: data and the per-column state */
	MemoryContext row_context;	/* reset after each row */
	int			client_encoding;	/* of the values sent */
	FmgrInfo   *output;			/* per column: its send or output function */
	bool	   *binary;			/* ... which of the two */
	PGFunction *to_json;		/* ... for an anonymous record, else NULL */
} DynbgwKeeper;

/* Add len bytes to the result, if it stays within dynbgw.max_result_size. */
static void
dynbgw_keeper_append(DynbgwKeeper *keeper, const void *bytes, Size len)
{
	Size		limit = (Size) dynbgw_max_result_size * 1024;
	Size		reached = (Size) keeper->data.len + len;

	if (reached > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("result of dynbgw worker %d reached %zu bytes at row " INT64_FORMAT ", more than \"dynbgw.max_result_size\" (%d kB)",
						keeper->info.key.n, reached, keeper->info.rows + 1,
						dynbgw_max_result_size),
				 errdetail("A run whose result is too large to keep fails, and keeps nothing."),
				 errhint("Return fewer rows, or raise \"dynbgw.max_result_size\".")));
	appendBinaryStringInfo(&keeper->data, bytes, (int) len);
}

/* A new statement's rows: describe its columns, replacing what was kept. */
static void
dynbgw_keeper_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	DynbgwKeeper *keeper = (DynbgwKeeper *) self;
	int			natts = typeinfo->natts;

	resetStringInfo(&keeper->data);
	keeper->info.rows = 0;
	keeper->info.natts = natts;
	/* A client encoding of SQL_ASCII converts nothing. */
	keeper->client_encoding = pg_get_client_encoding();
	keeper->info.encoding = GetDatabaseEncoding();
	keeper->info.value_encoding = keeper->client_encoding == PG_SQL_ASCII ?
		GetDatabaseEncoding() : keeper->client_encoding;
	keeper->output = MemoryContextAlloc(keeper->context, natts * sizeof(FmgrInfo));
	keeper->binary = MemoryContextAlloc(keeper->context, natts * sizeof(bool));
	keeper->to_json = MemoryContextAlloc(keeper->context, natts * sizeof(PGFunction));
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(typeinfo, i);
		DynbgwResultColumn column;
		HeapTuple	tuple;
		Form_pg_type type;

		memset(&column, 0, sizeof(column));
		column.typid = attr->atttypid;
		column.typmod = attr->atttypmod;
		keeper->to_json[i] = NULL;
		if (column.typid == RECORDOID)
			keeper->to_json[i] = row_to_json;
		else if (column.typid == RECORDARRAYOID || column.typid == ANYARRAYOID)
			keeper->to_json[i] = array_to_json;
		if (keeper->to_json[i] != NULL)
		{
			column.typid = JSONOID;
			column.typmod = -1;
		}

		tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(column.typid));
		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for type %u", column.typid);
		type = (Form_pg_type) GETSTRUCT(tuple);
		column.binary = OidIsValid(type->typsend);
		fmgr_info_cxt(column.binary ? type->typsend : type->typoutput,
					  &keeper->output[i], keeper->context);
		ReleaseSysCache(tuple);
		keeper->binary[i] = column.binary;

		strlcpy(column.name, NameStr(attr->attname), NAMEDATALEN);
		dynbgw_clip(column.typname,
					format_type_with_typemod(column.typid, column.typmod),
					DYNBGW_MAX_TYPE_NAME);
		dynbgw_keeper_append(keeper, &column, sizeof(column));
	}
}

static bool
dynbgw_keeper_receive(TupleTableSlot *slot, DestReceiver *self)
{
	DynbgwKeeper *keeper = (DynbgwKeeper *) self;
	MemoryContext oldcontext = MemoryContextSwitchTo(keeper->row_context);

	/* All values in the encoding the result records. */
	if (pg_get_client_encoding() != keeper->client_encoding)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("client_encoding changed while dynbgw worker %d kept rows",
						keeper->info.key.n)));
	slot_getallattrs(slot);
	for (int i = 0; i < keeper->info.natts; i++)
	{
		Datum		value = slot->tts_values[i];
		const char *bytes = NULL;
		int32		len = -1;

		if (!slot->tts_isnull[i])
		{
			if (keeper->to_json[i] != NULL)
				value = DirectFunctionCall1(keeper->to_json[i], value);
			if (keeper->binary[i])
			{
				bytea	   *sent = SendFunctionCall(&keeper->output[i], value);

				bytes = VARDATA(sent);
				len = VARSIZE(sent) - VARHDRSZ;
			}
			else
			{
				char	   *text = OutputFunctionCall(&keeper->output[i], value);

				bytes = pg_server_to_client(text, strlen(text));
				len = strlen(bytes);
			}
		}
		dynbgw_keeper_append(keeper, &len, sizeof(len));
		if (len > 0)
			dynbgw_keeper_append(keeper, bytes, len);
	}
	keeper->info.rows++;
	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(keeper->row_context);
	return true;
}

static void
dynbgw_keeper_shutdown(DestReceiver *self)
{
}

/* The keeper lives as long as its run's memory, which it is part of. */
static void
dynbgw_keeper_destroy(DestReceiver *self)
{
}

/*
 * A receiver that keeps the rows of a statement of worker n's run, for the
 * launch of this generation, in the current memory context (the run's).
 */
DestReceiver *
dynbgw_result_receiver(int n, uint64 generation, const DynbgwDefinition *def)
{
	DynbgwKeeper *keeper = palloc0(sizeof(DynbgwKeeper));

	keeper->pub.receiveSlot = dynbgw_keeper_receive;
	keeper->pub.rStartup = dynbgw_keeper_startup;
	keeper->pub.rShutdown = dynbgw_keeper_shutdown;
	keeper->pub.rDestroy = dynbgw_keeper_destroy;
	keeper->pub.mydest = DestNone;
	keeper->info.key.n = n;
	keeper->info.generation = generation;
	keeper->info.roleoid = def->roleoid;
	keeper->info.dboid = def->dboid;
	keeper->context = CurrentMemoryContext;
	keeper->row_context = AllocSetContextCreate(CurrentMemoryContext,
												"dynbgw result row",
												ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&keeper->data);
	return &keeper->pub;
}

/*
 * Stage what the run's last statement returned, before the run commits: a
 * statement that returns no rows (an UPDATE without RETURNING) leaves a
 * result without columns.
 */
void
dynbgw_result_keep(DestReceiver *receiver)
{
	DynbgwKeeper *keeper = (DynbgwKeeper *) receiver;

	keeper->info.size = keeper->data.len;
	dynbgw_result_stage(&keeper->info, keeper->data.data);
}

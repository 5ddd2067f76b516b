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
 * which the result records, and so are the values of a type that has no
 * send or receive function, or a part without one (an array of aclitem),
 * kept in their text form; names are in the database's.  What no other
 * process could read back in either form, an anonymous record, a
 * pseudo-type, a type for internal use only (pg_node_tree), or an array or
 * row of them, is kept as json or, for a single value, as text.  Text and
 * json are written with settings any session reads back the same: ISO
 * dates, postgres-style intervals, exact floats.  A
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
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "dynbgw.h"

/* How a column's values are written. */
typedef struct DynbgwKeptColumn
{
	FmgrInfo	output;			/* its send or output function */
	bool		binary;			/* ... which of the two */
	PGFunction	to_json;		/* what makes a value json first, or NULL */
} DynbgwKeptColumn;

typedef struct DynbgwKeeper
{
	DestReceiver pub;
	DynbgwResultInfo info;
	StringInfoData data;		/* columns, then rows */
	MemoryContext context;		/* of the run: data and the per-column state */
	MemoryContext row_context;	/* reset after each row */
	int			client_encoding;	/* of the values sent */
	DynbgwKeptColumn *columns;
	bool		canonical;		/* some column is written as text or json */
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
				 errmsg("result of this run reached %zu bytes, more than \"dynbgw.max_result_size\" (%d kB)",
						reached, dynbgw_max_result_size),
				 errdetail("It had " INT64_FORMAT " whole rows then.  A run whose result is too large to keep fails, and keeps nothing.",
						   keeper->info.rows),
				 errhint("Return fewer rows, or raise \"dynbgw.max_result_size\".")));
	appendBinaryStringInfo(&keeper->data, bytes, (int) len);
}

/* How values of a type can be kept so that other sessions read them. */
typedef enum DynbgwForm
{
	DYNBGW_FORM_BINARY,			/* send and receive functions, all parts too */
	DYNBGW_FORM_TEXT,			/* output and input functions */
	DYNBGW_FORM_NONE			/* neither reads back */
} DynbgwForm;

/* The form of a type: that of its least readable part. */
static DynbgwForm
dynbgw_type_form(Oid typid)
{
	HeapTuple	tuple;
	Form_pg_type type;
	DynbgwForm	form;

	check_stack_depth();
	tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for type %u", typid);
	type = (Form_pg_type) GETSTRUCT(tuple);
	if (type->typcategory == TYPCATEGORY_PSEUDOTYPE ||
		dynbgw_type_internal(typid, type->typcategory))
		form = DYNBGW_FORM_NONE;
	else if (OidIsValid(type->typsend) && OidIsValid(type->typreceive))
		form = DYNBGW_FORM_BINARY;
	else
		form = DYNBGW_FORM_TEXT;

	if (form != DYNBGW_FORM_NONE)
	{
		if (type->typtype == TYPTYPE_DOMAIN)
			form = Max(form, dynbgw_type_form(type->typbasetype));
		else if (IsTrueArrayType(type))
			form = Max(form, dynbgw_type_form(type->typelem));
		else if (type->typtype == TYPTYPE_RANGE)
			form = Max(form, dynbgw_type_form(get_range_subtype(typid)));
		else if (type->typtype == TYPTYPE_MULTIRANGE)
			form = Max(form, dynbgw_type_form(get_multirange_range(typid)));
		else if (type->typtype == TYPTYPE_COMPOSITE)
		{
			TupleDesc	desc = lookup_rowtype_tupdesc(typid, -1);

			for (int i = 0; i < desc->natts; i++)
			{
				Form_pg_attribute attr = TupleDescAttr(desc, i);

				if (!attr->attisdropped)
					form = Max(form, dynbgw_type_form(attr->atttypid));
			}
			ReleaseTupleDesc(desc);
		}
	}
	ReleaseSysCache(tuple);
	return form;
}

/*
 * How a column of type typid keeps its values (kept): in which form, and
 * as which type (column, its own, or json or text for what does not read
 * back).
 */
static void
dynbgw_keeper_column(DynbgwKeeper *keeper, Oid typid, DynbgwKeptColumn *kept,
					 DynbgwResultColumn *column)
{
	DynbgwForm	form = dynbgw_type_form(typid);
	HeapTuple	tuple;
	Form_pg_type type;

	kept->to_json = NULL;
	if (form == DYNBGW_FORM_NONE)
	{
		/* A row or an array as json; one value as its text. */
		if (typid == RECORDOID || type_is_rowtype(typid))
			kept->to_json = row_to_json;
		else if (typid == ANYARRAYOID || type_is_array(typid))
			kept->to_json = array_to_json;
		column->typid = kept->to_json != NULL ? JSONOID : TEXTOID;
		column->typmod = -1;
		form = kept->to_json != NULL ? DYNBGW_FORM_BINARY : DYNBGW_FORM_TEXT;
	}
	column->binary = kept->binary = form == DYNBGW_FORM_BINARY;
	keeper->canonical |= !kept->binary || kept->to_json != NULL;

	/* json is written by json's function, all else by its own type's. */
	tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(kept->to_json != NULL ?
													  JSONOID : typid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for type %u", typid);
	type = (Form_pg_type) GETSTRUCT(tuple);
	fmgr_info_cxt(kept->binary ? type->typsend : type->typoutput,
				  &kept->output, keeper->context);
	ReleaseSysCache(tuple);
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
	keeper->columns = MemoryContextAlloc(keeper->context,
										 natts * sizeof(DynbgwKeptColumn));
	keeper->canonical = false;
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(typeinfo, i);
		DynbgwResultColumn column;

		memset(&column, 0, sizeof(column));
		column.typid = attr->atttypid;
		column.typmod = attr->atttypmod;
		dynbgw_keeper_column(keeper, attr->atttypid, &keeper->columns[i],
							 &column);

		strlcpy(column.name, NameStr(attr->attname), NAMEDATALEN);
		dynbgw_clip(column.typname,
					format_type_with_typemod(column.typid, column.typmod),
					DYNBGW_MAX_TYPE_NAME);
		dynbgw_keeper_append(keeper, &column, sizeof(column));
	}
}

/*
 * Text and json written whatever the run set: dates in ISO, intervals in
 * postgres style, floats exact, as any session reads them back.  Undone
 * with AtEOXact_GUC() at the level returned, or by an error's abort.
 */
static int
dynbgw_keeper_canonical_settings(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("datestyle", "ISO", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("intervalstyle", "postgres", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("extra_float_digits", "1", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

static bool
dynbgw_keeper_receive(TupleTableSlot *slot, DestReceiver *self)
{
	DynbgwKeeper *keeper = (DynbgwKeeper *) self;
	MemoryContext oldcontext = MemoryContextSwitchTo(keeper->row_context);
	int16		natts = keeper->info.natts;
	int			settings_level = 0;

	/* All values in the encoding the result records. */
	if (pg_get_client_encoding() != keeper->client_encoding)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("client_encoding changed while this run kept rows")));
	slot_getallattrs(slot);
	if (keeper->canonical)
		settings_level = dynbgw_keeper_canonical_settings();
	/* Counted even without columns, so that no row is free. */
	dynbgw_keeper_append(keeper, &natts, sizeof(natts));
	for (int i = 0; i < keeper->info.natts; i++)
	{
		DynbgwKeptColumn *kept = &keeper->columns[i];
		Datum		value = slot->tts_values[i];
		const char *bytes = NULL;
		int32		len = -1;

		if (!slot->tts_isnull[i])
		{
			if (kept->to_json != NULL)
				value = DirectFunctionCall1(kept->to_json, value);
			if (kept->binary)
			{
				bytea	   *sent = SendFunctionCall(&kept->output, value);

				bytes = VARDATA(sent);
				len = VARSIZE(sent) - VARHDRSZ;
			}
			else
			{
				char	   *text = OutputFunctionCall(&kept->output, value);

				bytes = pg_server_to_client(text, strlen(text));
				len = strlen(bytes);
			}
		}
		dynbgw_keeper_append(keeper, &len, sizeof(len));
		if (len > 0)
			dynbgw_keeper_append(keeper, bytes, len);
	}
	if (keeper->canonical)
		AtEOXact_GUC(false, settings_level);
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
 * A receiver that keeps the rows of a statement of a run, under the key of
 * the worker or task, for the launch of this generation, in the current
 * memory context (the run's).
 */
DestReceiver *
dynbgw_result_receiver(const DynbgwResultKey *key, uint64 generation,
					   const DynbgwDefinition *def)
{
	DynbgwKeeper *keeper = palloc0(sizeof(DynbgwKeeper));

	keeper->pub.receiveSlot = dynbgw_keeper_receive;
	keeper->pub.rStartup = dynbgw_keeper_startup;
	keeper->pub.rShutdown = dynbgw_keeper_shutdown;
	keeper->pub.rDestroy = dynbgw_keeper_destroy;
	keeper->pub.mydest = DestNone;
	keeper->info.key = *key;
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

/*-------------------------------------------------------------------------
 *
 * dynbgw_result.c
 *		The SQL interface of kept results: read them as rows or as jsonb,
 *		list them, drop them.
 *
 * A result is its worker's role's data, made with that role's attributes
 * (superuser, BYPASSRLS) too: only roles that may SET ROLE to it, and
 * superusers, read or drop it, from any database and as often as they
 * like, as only they could have run its command themselves.  Values are
 * read back with their types' receive functions, run as that role in a
 * security-restricted operation, as PostgreSQL runs code on a table
 * owner's behalf in vacuum_rel(): a domain's check may call the role's own
 * functions, which must not run with the reader's rights.  The values are
 * in the worker's client encoding, which the reader's client_encoding is
 * set to while they are received, as a client's would be.  Types that are
 * not built in are known only in the worker's database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_result);
PG_FUNCTION_INFO_V1(dynbgw_result_json);
PG_FUNCTION_INFO_V1(dynbgw_drop_result);
PG_FUNCTION_INFO_V1(dynbgw_results);
PG_FUNCTION_INFO_V1(dynbgw_task_result);
PG_FUNCTION_INFO_V1(dynbgw_task_result_json);
PG_FUNCTION_INFO_V1(dynbgw_drop_task_result);

/* Columns of version 1.4; those of an earlier one come first. */
#define DYNBGW_RESULTS_COLS 9

/* How a column's values are read. */
typedef struct DynbgwReadColumn
{
	FmgrInfo	input;			/* its receive or input function */
	Oid			ioparam;
	int32		typmod;
} DynbgwReadColumn;

/* A result copied out of the store, read a row at a time. */
typedef struct DynbgwReading
{
	DynbgwResultKey key;
	char		what[64];		/* "dynbgw worker n" or "dynbgw task id" */
	DynbgwResultInfo info;
	char	   *data;			/* info.size bytes, and a spare one */
	DynbgwResultColumn *columns;	/* at the start of data */
	char	   *next;			/* the next row's first value */
	int64		rows_read;
	DynbgwReadColumn *read;		/* per column */
	MemoryContext row_context;	/* the values of the current row */

	/* the reader, while the values are read as the result's role */
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} DynbgwReading;

/*
 * Whether the caller may drop the result of a role (rolename: NULL if the
 * role was dropped), and read it if the role exists: see the file header.
 */
static bool
dynbgw_result_may_drop(Oid roleoid, const char *rolename)
{
	return superuser() ||
		(rolename != NULL && member_can_set_role(GetUserId(), roleoid));
}

/*
 * That the caller may read (reading) or drop a result.  Nobody reads the
 * result of a role that is gone; a superuser may drop it.
 */
static void
dynbgw_result_check_access(const char *what, const DynbgwResultInfo *info,
						   bool reading)
{
	char	   *rolename = GetUserNameFromId(info->roleoid, true);

	if (rolename == NULL && (reading || !superuser()))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role of the result of %s was dropped", what),
				 info->key.task == 0 ?
				 errhint("A superuser may drop the result with dynbgw_drop_result(%d).",
						 info->key.n) : 0));
	if (!dynbgw_result_may_drop(info->roleoid, rolename))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for the result of %s", what),
				 errdetail("Only roles that may SET ROLE to \"%s\", and superusers, may read or drop it.",
						   rolename)));
}

/*
 * A launch of n drops what the launches before it kept, once its worker
 * is ready (dynbgw_launch_worker()): it is for those who may drop that.
 * Called once n is reserved for the launch of this generation, when no
 * other result can come, and before a replace stops anything.
 */
void
dynbgw_result_check_launch(int n, uint64 generation)
{
	DynbgwResultKey key = {n, 0};
	DynbgwResultInfo info;
	char	   *rolename;

	if (!dynbgw_result_get(&key, 0, &info, NULL, 0) ||
		info.generation >= generation)
		return;
	rolename = GetUserNameFromId(info.roleoid, true);
	if (dynbgw_result_may_drop(info.roleoid, rolename))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to launch dynbgw worker %d", n),
			 rolename != NULL ?
			 errdetail("Its number holds a result of role \"%s\", which a launch would drop.",
					   rolename) :
			 errdetail("Its number holds a result of a dropped role, which a launch would drop."),
			 errhint("Launch another number, or drop the result first.")));
}

static void
dynbgw_result_none(const DynbgwResultKey *key, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("%s has no result", what),
			 key->task == 0 ?
			 errdetail("A worker launched with keep_result keeps the rows of the last statement of its last successful run, until its number is launched again or the result is dropped.") :
			 errdetail("A task submitted with keep_result that succeeded keeps the rows of its last statement, as long as dynbgw_tasks lists it."),
			 errhint("The view dynbgw_results lists the results that are kept.")));
}

/*
 * Copy worker n's result out of the store, once the caller may read it.
 * If it is replaced between the check and the copy, the new one is
 * checked in turn.
 */
static void
dynbgw_result_open(const DynbgwResultKey *key, DynbgwReading *r)
{
	memset(r, 0, sizeof(*r));
	r->key = *key;
	if (key->task == 0)
		snprintf(r->what, sizeof(r->what), "dynbgw worker %d", key->n);
	else
		snprintf(r->what, sizeof(r->what), "dynbgw task " UINT64_FORMAT,
				 key->task);
	for (;;)
	{
		if (!dynbgw_result_get(key, 0, &r->info, NULL, 0))
			dynbgw_result_none(key, r->what);
		dynbgw_result_check_access(r->what, &r->info, true);
		r->data = palloc(r->info.size + 1);
		if (dynbgw_result_get(key, r->info.version, NULL, r->data,
							  r->info.size))
			break;
		pfree(r->data);
		CHECK_FOR_INTERRUPTS();
	}
	r->columns = (DynbgwResultColumn *) r->data;
	r->next = r->data + r->info.natts * sizeof(DynbgwResultColumn);
	r->row_context = AllocSetContextCreate(CurrentMemoryContext,
										   "dynbgw result row",
										   ALLOCSET_DEFAULT_SIZES);
}

/* Column i's name, or type's name, in this database's encoding. */
static char *
dynbgw_result_name(const DynbgwReading *r, const char *name)
{
	return dynbgw_text_for_session(name, r->info.encoding);
}

/* Whether this database knows column i's type as the worker's did. */
static void
dynbgw_result_check_type(const DynbgwReading *r, int i)
{
	const DynbgwResultColumn *column = &r->columns[i];
	char	   *name = dynbgw_result_name(r, column->name);
	char	   *typname = dynbgw_result_name(r, column->typname);

	if (column->typid >= FirstNormalObjectId && r->info.dboid != MyDatabaseId)
	{
		char	   *dbname = get_database_name(r->info.dboid);

		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("column \"%s\" of the result of %s has a type of another database",
						name, r->what),
				 errdetail("Its type %s is one of database \"%s\"; in other databases only columns of built-in types can be read.",
						   typname, dbname ? dbname : "?"),
				 dbname ? errhint("Read the result in database \"%s\".", dbname) : 0));
	}
	if (!SearchSysCacheExists1(TYPEOID, ObjectIdGetDatum(column->typid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type %s of column \"%s\" of the result of %s no longer exists",
						typname, name, r->what)));
}

static void
dynbgw_result_mismatch(const DynbgwReading *r, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column definition list does not match the result of %s",
					r->what),
			 errdetail_internal("%s", detail),
			 errhint("The column \"columns\" of the view dynbgw_results shows the result's columns.")));
}

/* A column definition list must name the kept types, in order. */
static void
dynbgw_result_check_columns(const DynbgwReading *r, TupleDesc expected)
{
	if (r->info.natts == 0 && expected->natts > 0)
		dynbgw_result_mismatch(r, _("The result has no columns: the last statement of its run returned none, or no rows at all."));
	if (expected->natts != r->info.natts)
		dynbgw_result_mismatch(r, psprintf(_("The result has %d columns, the list %d."),
										   r->info.natts, expected->natts));
	for (int i = 0; i < expected->natts; i++)
	{
		Oid			listed = TupleDescAttr(expected, i)->atttypid;

		if (listed != r->columns[i].typid)
			dynbgw_result_mismatch(r, psprintf(_("Column %d of the result, \"%s\", has type %s, not %s."),
											   i + 1,
											   dynbgw_result_name(r, r->columns[i].name),
											   dynbgw_result_name(r, r->columns[i].typname),
											   format_type_be(listed)));
	}
}

/*
 * Look up how to read each column: as the kept type, with the typmods of a
 * column definition list if there is one (expected), else the kept ones.
 */
static void
dynbgw_result_prepare(DynbgwReading *r, TupleDesc expected)
{
	int			natts = r->info.natts;

	for (int i = 0; i < natts; i++)
		dynbgw_result_check_type(r, i);
	if (expected != NULL)
		dynbgw_result_check_columns(r, expected);

	r->read = palloc(natts * sizeof(DynbgwReadColumn));
	for (int i = 0; i < natts; i++)
	{
		Oid			func;

		if (r->columns[i].binary)
			getTypeBinaryInputInfo(r->columns[i].typid, &func, &r->read[i].ioparam);
		else
			getTypeInputInfo(r->columns[i].typid, &func, &r->read[i].ioparam);
		fmgr_info(func, &r->read[i].input);
		r->read[i].typmod = expected != NULL ?
			TupleDescAttr(expected, i)->atttypmod : r->columns[i].typmod;
	}
}

/*
 * Read values as the result's role, in a security-restricted operation
 * with a safe search_path, and in the client encoding of the values, until
 * dynbgw_result_act_as_reader().  An error meanwhile restores the reader
 * with the transaction or subtransaction.
 */
static void
dynbgw_result_act_as_owner(DynbgwReading *r)
{
	GetUserIdAndSecContext(&r->save_userid, &r->save_sec_context);
	SetUserIdAndSecContext(r->info.roleoid,
						   r->save_sec_context | SECURITY_RESTRICTED_OPERATION);
	r->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/* As a setting, which a function's SET clause restores, not undoes. */
	if (r->info.value_encoding != pg_get_client_encoding())
		(void) set_config_option("client_encoding",
								 pg_encoding_to_char(r->info.value_encoding),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
}

static void
dynbgw_result_act_as_reader(DynbgwReading *r)
{
	AtEOXact_GUC(false, r->save_nestlevel);
	SetUserIdAndSecContext(r->save_userid, r->save_sec_context);
}

/* Column i's value from its len bytes, in the row context. */
static Datum
dynbgw_result_value(DynbgwReading *r, int i, char *bytes, int32 len)
{
	char		saved = bytes[len];
	Datum		value;

	/* What follows is the next length or the spare byte: lent, and back. */
	bytes[len] = '\0';
	if (r->columns[i].binary)
	{
		StringInfoData buf;

		buf.data = bytes;
		buf.len = len;
		buf.maxlen = len + 1;
		buf.cursor = 0;
		value = ReceiveFunctionCall(&r->read[i].input, &buf, r->read[i].ioparam,
									r->read[i].typmod);
		if (buf.cursor != buf.len)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("incorrect binary data format in column \"%s\" of the result of %s",
							r->columns[i].name, r->what)));
	}
	else
		value = InputFunctionCall(&r->read[i].input,
								  pg_client_to_server(bytes, len),
								  r->read[i].ioparam, r->read[i].typmod);
	bytes[len] = saved;
	return value;
}

/* The values of the row at r->next, which moves on past it. */
static void
dynbgw_result_values(DynbgwReading *r, Datum *values, bool *nulls)
{
	char	   *end = r->data + r->info.size;
	int16		natts;

	if (end - r->next < (ptrdiff_t) sizeof(natts))
		elog(ERROR, "result of %s is cut short", r->what);
	memcpy(&natts, r->next, sizeof(natts));
	r->next += sizeof(natts);
	if (natts != r->info.natts)
		elog(ERROR, "result of %s has a row of %d columns, not %d",
			 r->what, natts, r->info.natts);
	for (int i = 0; i < r->info.natts; i++)
	{
		int32		len;

		if (end - r->next < (ptrdiff_t) sizeof(len))
			elog(ERROR, "result of %s is cut short", r->what);
		memcpy(&len, r->next, sizeof(len));
		r->next += sizeof(len);
		nulls[i] = len < 0;
		if (nulls[i])
			continue;
		if (end - r->next < len)
			elog(ERROR, "result of %s is cut short", r->what);
		values[i] = dynbgw_result_value(r, i, r->next, len);
		r->next += len;
	}
}

/*
 * The next row's values, in the row context, which the caller resets;
 * false after the last row.
 */
static bool
dynbgw_result_next(DynbgwReading *r, Datum *values, bool *nulls)
{
	MemoryContext oldcontext;

	if (r->rows_read == r->info.rows)
		return false;
	oldcontext = MemoryContextSwitchTo(r->row_context);
	dynbgw_result_values(r, values, nulls);
	MemoryContextSwitchTo(oldcontext);
	r->rows_read++;
	return true;
}

/*
 * Put every row into the caller's tuplestore, as it is or, with rowdesc,
 * as a jsonb object of the row of that descriptor.
 */
static void
dynbgw_result_put_rows(DynbgwReading *r, ReturnSetInfo *rsinfo,
					   TupleDesc rowdesc)
{
	Datum	   *values = palloc(r->info.natts * sizeof(Datum));
	bool	   *nulls = palloc(r->info.natts * sizeof(bool));
	int			reader_encoding = pg_get_client_encoding();

	dynbgw_result_act_as_owner(r);
	PG_TRY();
	{
		while (dynbgw_result_next(r, values, nulls))
		{
			MemoryContext oldcontext = MemoryContextSwitchTo(r->row_context);

			if (rowdesc == NULL)
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
									 values, nulls);
			else
			{
				Datum		row = HeapTupleGetDatum(heap_form_tuple(rowdesc, values, nulls));
				text	   *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));
				Datum		object = DirectFunctionCall1(jsonb_in,
														 CStringGetDatum(text_to_cstring(json)));
				bool		isnull = false;

				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
									 &object, &isnull);
			}
			MemoryContextSwitchTo(oldcontext);
			MemoryContextReset(r->row_context);
		}
	}
	PG_CATCH();
	{
		/* The error reaches the client before the abort restores this. */
		SetClientEncoding(reader_encoding);
		PG_RE_THROW();
	}
	PG_END_TRY();
	dynbgw_result_act_as_reader(r);
}

/* The rows kept under key, as the types of the column definition list. */
static Datum
dynbgw_read_rows(FunctionCallInfo fcinfo, const DynbgwResultKey *key)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwReading r;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	dynbgw_result_open(key, &r);
	dynbgw_result_prepare(&r, rsinfo->setDesc);
	dynbgw_result_put_rows(&r, rsinfo, NULL);
	return (Datum) 0;
}

/* The rows kept under key, each as a jsonb object of its columns. */
static Datum
dynbgw_read_json(FunctionCallInfo fcinfo, const DynbgwResultKey *key)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwReading r;
	TupleDesc	rowdesc;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	dynbgw_result_open(key, &r);
	dynbgw_result_prepare(&r, NULL);
	rowdesc = CreateTemplateTupleDesc(r.info.natts);
	for (int i = 0; i < r.info.natts; i++)
		TupleDescInitEntry(rowdesc, i + 1,
						   dynbgw_result_name(&r, r.columns[i].name),
						   r.columns[i].typid, r.columns[i].typmod, 0);
	TupleDescFinalize(rowdesc);
	rowdesc = BlessTupleDesc(rowdesc);
	dynbgw_result_put_rows(&r, rsinfo, rowdesc);
	return (Datum) 0;
}

/* The key of the result of worker n (task false) or of a task. */
static DynbgwResultKey
dynbgw_result_key_arg(FunctionCallInfo fcinfo, bool task)
{
	DynbgwResultKey key = {0, 0};

	if (!task)
		key.n = dynbgw_number_arg(fcinfo, 0, false);
	else
		key.task = dynbgw_task_arg(fcinfo, 0);
	return key;
}

/*
 * dynbgw_result(n) returns setof record
 *
 * The rows that worker n kept, as the types of the column definition list,
 * which must be those kept.
 */
Datum
dynbgw_result(PG_FUNCTION_ARGS)
{
	DynbgwResultKey key = dynbgw_result_key_arg(fcinfo, false);

	return dynbgw_read_rows(fcinfo, &key);
}

/*
 * dynbgw_result_json(n) returns setof jsonb
 *
 * The rows that worker n kept, each as an object of its columns, as
 * to_jsonb() makes it of a row.
 */
Datum
dynbgw_result_json(PG_FUNCTION_ARGS)
{
	DynbgwResultKey key = dynbgw_result_key_arg(fcinfo, false);

	return dynbgw_read_json(fcinfo, &key);
}

/*
 * dynbgw_task_result(id) returns setof record
 *
 * The rows that task id kept, as dynbgw_result() reads a worker's.
 */
Datum
dynbgw_task_result(PG_FUNCTION_ARGS)
{
	DynbgwResultKey key = dynbgw_result_key_arg(fcinfo, true);

	return dynbgw_read_rows(fcinfo, &key);
}

/*
 * dynbgw_task_result_json(id) returns setof jsonb
 *
 * The rows that task id kept, as dynbgw_result_json() reads a worker's.
 */
Datum
dynbgw_task_result_json(PG_FUNCTION_ARGS)
{
	DynbgwResultKey key = dynbgw_result_key_arg(fcinfo, true);

	return dynbgw_read_json(fcinfo, &key);
}

/*
 * Drop the result kept under key, freeing its memory.  False, with a
 * notice, if there is none.
 */
static bool
dynbgw_drop_key(const DynbgwResultKey *key)
{
	char	   *what = key->task == 0 ?
		psprintf("dynbgw worker %d", key->n) :
		psprintf("dynbgw task " UINT64_FORMAT, key->task);
	DynbgwResultInfo info;

	for (;;)
	{
		if (!dynbgw_result_get(key, 0, &info, NULL, 0))
		{
			ereport(NOTICE,
					(errmsg("%s has no result", what)));
			return false;
		}
		dynbgw_result_check_access(what, &info, false);
		/* Only what was checked: a result kept meanwhile is checked anew. */
		if (dynbgw_result_drop(key, 0, info.version))
			return true;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * dynbgw_drop_result(n) returns boolean
 *
 * Drop the result worker n kept, freeing its memory.  False, with a notice,
 * if it kept none.
 */
Datum
dynbgw_drop_result(PG_FUNCTION_ARGS)
{
	DynbgwResultKey key = dynbgw_result_key_arg(fcinfo, false);

	PG_RETURN_BOOL(dynbgw_drop_key(&key));
}

/*
 * dynbgw_drop_task_result(id) returns boolean
 *
 * Drop the result task id kept, before its record leaves the history.
 */
Datum
dynbgw_drop_task_result(PG_FUNCTION_ARGS)
{
	DynbgwResultKey key = dynbgw_result_key_arg(fcinfo, true);

	PG_RETURN_BOOL(dynbgw_drop_key(&key));
}

/*
 * The columns of a result as a column definition list, "a integer, b
 * text"; NULL if the result has changed meanwhile.
 */
static char *
dynbgw_result_columns(const DynbgwResultInfo *info)
{
	Size		len = info->natts * sizeof(DynbgwResultColumn);
	DynbgwResultColumn *columns = palloc(Max(len, 1));
	StringInfoData list;

	if (!dynbgw_result_get(&info->key, info->version, NULL, (char *) columns,
						   len))
		return NULL;
	initStringInfo(&list);
	for (int i = 0; i < info->natts; i++)
		appendStringInfo(&list, "%s%s %s", i > 0 ? ", " : "",
						 quote_identifier(dynbgw_text_for_session(columns[i].name,
																  info->encoding)),
						 dynbgw_text_for_session(columns[i].typname,
												 info->encoding));
	return list.data;
}

/*
 * dynbgw_results() returns setof record
 *
 * One row per result kept, with its size, so that the total is known to
 * all; when it was kept, its rows and its columns only to those who may
 * see what its worker does, as in dynbgw_workers.
 */
Datum
dynbgw_results(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwResultInfo *infos;
	int			count;

	InitMaterializedSRF(fcinfo, 0);
	infos = dynbgw_result_list(&count);
	for (int i = 0; i < count; i++)
	{
		const DynbgwResultInfo *info = &infos[i];
		Datum		values[DYNBGW_RESULTS_COLS];
		bool		nulls[DYNBGW_RESULTS_COLS];
		char	   *rolename = GetUserNameFromId(info->roleoid, true);
		char	   *dbname = get_database_name(info->dboid);
		char	   *columns = NULL;

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(info->key.n);
		nulls[0] = info->key.task != 0;
		values[8] = Int64GetDatum((int64) info->key.task);
		nulls[8] = info->key.task == 0;
		values[1] = Int64GetDatum((int64) info->generation);
		values[2] = dynbgw_name_datum(rolename);
		nulls[2] = rolename == NULL;
		values[3] = dynbgw_name_datum(dbname);
		nulls[3] = dbname == NULL;
		values[6] = Int64GetDatum((int64) info->size);
		if (dynbgw_may_see(info->roleoid))
		{
			values[4] = TimestampTzGetDatum(info->kept_at);
			values[5] = Int64GetDatum(info->rows);
			columns = dynbgw_result_columns(info);
		}
		nulls[4] = nulls[5] = columns == NULL;
		if (columns != NULL)
			values[7] = CStringGetTextDatum(columns);
		nulls[7] = columns == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*-------------------------------------------------------------------------
 *
 * dynbgw_persist.c
 *		Saved definitions: the tables dynbgw_definitions and
 *		dynbgw_pool_definitions, who may write them, saving and forgetting.
 *
 * dynbgw_launch(..., persist => true) saves the definition in the
 * extension's table dynbgw_definitions of the database it was launched
 * from, in the launching transaction and after the number was reserved
 * (so that a launch that skips saves nothing) but before the worker
 * starts (so that a definition that cannot be saved is not launched).
 * dynbgw_restore.c launches them again.  dynbgw_pool_create(...,
 * persist => true) saves a pool likewise, before its workers start, in
 * dynbgw_pool_definitions, whose rows follow the same rules.
 *
 * A row says as whom it runs, so its owner is an identity, and identity
 * never comes from data anybody could write: row security is a filter that
 * superusers, the table's owner and BYPASSRLS roles pass, and
 * pg_write_all_data writes every table.  The trigger in this file is the
 * check: nobody but a superuser writes a row owned by another role, or
 * touches a row another role owns.  Roles and the target database are kept
 * by OID; a NULL database is the database the row is in, so that a copy of
 * a database follows its own data.
 *
 * The table is read here in C, never with SQL, so that reading it as a
 * superuser runs nothing that a search_path could redirect.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_definitions_guard);

#define DYNBGW_DEFINITIONS	"dynbgw_definitions"
#define DYNBGW_POOL_DEFINITIONS	"dynbgw_pool_definitions"

/*
 * The table's columns, by name, since an upgraded table may order them
 * otherwise, and with their types, since the table's owner may change a
 * column's, and every datum is read, and passed to dynbgw_launch, as the
 * type it should have.
 */
typedef struct DynbgwColumn
{
	const char *name;
	Oid			type;
} DynbgwColumn;

static const DynbgwColumn dynbgw_columns[DYNBGW_SAVED_COLUMNS] = {
	[DYNBGW_SAVED_N] = {"n", INT4OID},
	[DYNBGW_SAVED_OWNER] = {"owner", REGROLEOID},
	[DYNBGW_SAVED_COMMAND] = {"command", TEXTOID},
	[DYNBGW_SAVED_NAPTIME] = {"naptime", INTERVALOID},
	[DYNBGW_SAVED_SCHEDULE] = {"schedule", TEXTOID},
	[DYNBGW_SAVED_TIMEZONE] = {"timezone", TEXTOID},
	[DYNBGW_SAVED_DATABASE] = {"database", OIDOID},
	[DYNBGW_SAVED_ROLE] = {"role", REGROLEOID},
	[DYNBGW_SAVED_RUNS] = {"runs", INT8OID},
	[DYNBGW_SAVED_RESTART] = {"restart", INTERVALOID},
	[DYNBGW_SAVED_RUN_TIMEOUT] = {"run_timeout", INTERVALOID},
	[DYNBGW_SAVED_RETRY] = {"retry", INT4OID},
	[DYNBGW_SAVED_RETRY_DELAY] = {"retry_delay", INTERVALOID},
	[DYNBGW_SAVED_KEEP_RESULT] = {"keep_result", BOOLOID}
};

/*
 * The table dynbgw_definitions of the extension in this schema, opened
 * with lockmode.  An error if it has the layout of version 1.1, which a
 * new library meets until ALTER EXTENSION dynbgw UPDATE has run.
 */
static Relation
dynbgw_definitions_open(Oid schema, LOCKMODE lockmode)
{
	Oid			relid = get_relname_relid(DYNBGW_DEFINITIONS, schema);
	Relation	rel;
	AttrNumber	owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"%s\" of the dynbgw extension does not exist",
						DYNBGW_DEFINITIONS)));
	rel = table_open(relid, lockmode);
	owner = get_attnum(relid, "owner");
	if (owner == InvalidAttrNumber ||
		TupleDescAttr(RelationGetDescr(rel), owner - 1)->atttypid != REGROLEOID)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("saved dynbgw definitions need version 1.1.1 of the extension"),
				 errhint("Run ALTER EXTENSION dynbgw UPDATE in this database.")));
	return rel;
}

/* Rows in order of n. */
static int
dynbgw_saved_cmp(const ListCell *a, const ListCell *b)
{
	const DynbgwSaved *x = lfirst(a);
	const DynbgwSaved *y = lfirst(b);

	return (x->n > y->n) - (x->n < y->n);
}

/*
 * Every row of a table of saved definitions, each as an array of its
 * columns' values followed by one of their nulls (a column missing from
 * an older table is null).  Read with the active snapshot, past row
 * security: callers decide what the current role may see.
 */
static List *
dynbgw_table_rows(Relation rel, const DynbgwColumn *columns, int ncolumns,
				  int first_optional)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	AttrNumber *attnums = palloc(ncolumns * sizeof(AttrNumber));
	TableScanDesc scan;
	TupleTableSlot *slot;
	List	   *rows = NIL;

	for (int col = 0; col < ncolumns; col++)
	{
		Oid			type;

		attnums[col] = get_attnum(RelationGetRelid(rel), columns[col].name);
		if (attnums[col] == InvalidAttrNumber)
		{
			if (col < first_optional)
				elog(ERROR, "column \"%s\" of table \"%s\" does not exist",
					 columns[col].name, RelationGetRelationName(rel));
			continue;
		}
		type = TupleDescAttr(tupdesc, attnums[col] - 1)->atttypid;
		if (type != columns[col].type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table \"%s\" has type %s, not %s",
							columns[col].name, RelationGetRelationName(rel),
							format_type_be(type),
							format_type_be(columns[col].type)),
					 errhint("Give the column back its type, or drop and create the extension again.")));
	}

	slot = table_slot_create(rel, NULL);
	scan = dynbgw_table_beginscan(rel, GetActiveSnapshot());
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		Datum	   *values = palloc0(ncolumns * (sizeof(Datum) + sizeof(bool)));
		bool	   *isnull = (bool *) &values[ncolumns];

		slot_getallattrs(slot);
		for (int col = 0; col < ncolumns; col++)
		{
			int			i = attnums[col] - 1;
			Form_pg_attribute att;

			isnull[col] = i < 0 || slot->tts_isnull[i];
			if (isnull[col])
				continue;
			att = TupleDescAttr(tupdesc, i);
			values[col] = datumCopy(slot->tts_values[i], att->attbyval,
									att->attlen);
		}
		rows = lappend(rows, values);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return rows;
}

/*
 * Every row of dynbgw_definitions in this schema, as DynbgwSaved, ordered
 * by n.
 */
List *
dynbgw_saved_read(Oid schema)
{
	Relation	rel = dynbgw_definitions_open(schema, AccessShareLock);
	List	   *rows = NIL;
	ListCell   *lc;

	foreach(lc, dynbgw_table_rows(rel, dynbgw_columns, DYNBGW_SAVED_COLUMNS,
								  DYNBGW_SAVED_FIRST_OPTIONAL))
	{
		Datum	   *values = lfirst(lc);
		bool	   *isnull = (bool *) &values[DYNBGW_SAVED_COLUMNS];
		DynbgwSaved *row = palloc0(sizeof(DynbgwSaved));

		memcpy(row->values, values, sizeof(row->values));
		memcpy(row->isnull, isnull, sizeof(row->isnull));
		row->table_owner = rel->rd_rel->relowner;
		row->n = DatumGetInt32(row->values[DYNBGW_SAVED_N]);
		row->owner = DatumGetObjectId(row->values[DYNBGW_SAVED_OWNER]);
		row->role = DatumGetObjectId(row->values[DYNBGW_SAVED_ROLE]);
		row->database = row->isnull[DYNBGW_SAVED_DATABASE] ? InvalidOid :
			DatumGetObjectId(row->values[DYNBGW_SAVED_DATABASE]);
		rows = lappend(rows, row);
	}
	table_close(rel, AccessShareLock);

	list_sort(rows, dynbgw_saved_cmp);
	return rows;
}

/* The columns of dynbgw_pool_definitions, as those of dynbgw_definitions. */
typedef enum DynbgwSavedPoolColumn
{
	DYNBGW_POOL_NAME,
	DYNBGW_POOL_OWNER,
	DYNBGW_POOL_SIZE,
	DYNBGW_POOL_DATABASE,
	DYNBGW_POOL_ROLE,
	DYNBGW_POOL_QUEUE_SIZE,
	DYNBGW_POOL_COLUMNS
} DynbgwSavedPoolColumn;

static const DynbgwColumn dynbgw_pool_columns[DYNBGW_POOL_COLUMNS] = {
	[DYNBGW_POOL_NAME] = {"name", TEXTOID},
	[DYNBGW_POOL_OWNER] = {"owner", REGROLEOID},
	[DYNBGW_POOL_SIZE] = {"size", INT4OID},
	[DYNBGW_POOL_DATABASE] = {"database", OIDOID},
	[DYNBGW_POOL_ROLE] = {"role", REGROLEOID},
	[DYNBGW_POOL_QUEUE_SIZE] = {"queue_size", INT4OID}
};

/*
 * The table dynbgw_pool_definitions of the extension in this schema,
 * opened for reading; NULL if it has none, before version 1.4.
 */
static Relation
dynbgw_pool_definitions_open_if_any(Oid schema)
{
	Oid			relid = get_relname_relid(DYNBGW_POOL_DEFINITIONS, schema);

	return OidIsValid(relid) ? table_open(relid, AccessShareLock) : NULL;
}

static Relation
dynbgw_pool_definitions_open(Oid schema)
{
	Relation	rel = dynbgw_pool_definitions_open_if_any(schema);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("saved dynbgw pools need version 1.4 of the extension"),
				 errhint("Run ALTER EXTENSION dynbgw UPDATE in this database.")));
	return rel;
}

/* Saved pools in order of name. */
static int
dynbgw_saved_pool_cmp(const ListCell *a, const ListCell *b)
{
	return strcmp(((const DynbgwSavedPool *) lfirst(a))->name,
				  ((const DynbgwSavedPool *) lfirst(b))->name);
}

/*
 * Every row of dynbgw_pool_definitions in this schema, as DynbgwSavedPool,
 * ordered by name; none before version 1.4.
 */
List *
dynbgw_saved_pools_read(Oid schema)
{
	Relation	rel = dynbgw_pool_definitions_open_if_any(schema);
	List	   *pools = NIL;
	ListCell   *lc;

	if (rel == NULL)
		return NIL;
	foreach(lc, dynbgw_table_rows(rel, dynbgw_pool_columns,
								  DYNBGW_POOL_COLUMNS, DYNBGW_POOL_COLUMNS))
	{
		Datum	   *values = lfirst(lc);
		bool	   *isnull = (bool *) &values[DYNBGW_POOL_COLUMNS];
		DynbgwSavedPool *pool = palloc0(sizeof(DynbgwSavedPool));

		/* The table's NOT NULL may have been dropped by its owner. */
		for (int col = 0; col < DYNBGW_POOL_COLUMNS; col++)
		{
			if (isnull[col] && col != DYNBGW_POOL_DATABASE)
				elog(ERROR, "column \"%s\" of table \"%s\" holds a null",
					 dynbgw_pool_columns[col].name, DYNBGW_POOL_DEFINITIONS);
		}
		strlcpy(pool->name, TextDatumGetCString(values[DYNBGW_POOL_NAME]),
				NAMEDATALEN);
		pool->owner = DatumGetObjectId(values[DYNBGW_POOL_OWNER]);
		pool->size = DatumGetInt32(values[DYNBGW_POOL_SIZE]);
		pool->database = isnull[DYNBGW_POOL_DATABASE] ? InvalidOid :
			DatumGetObjectId(values[DYNBGW_POOL_DATABASE]);
		pool->role = DatumGetObjectId(values[DYNBGW_POOL_ROLE]);
		pool->queue_size = DatumGetInt32(values[DYNBGW_POOL_QUEUE_SIZE]);
		pool->table_owner = rel->rd_rel->relowner;
		pools = lappend(pools, pool);
	}
	table_close(rel, AccessShareLock);
	list_sort(pools, dynbgw_saved_pool_cmp);
	return pools;
}

/* Row n of the rows read, or NULL. */
static DynbgwSaved *
dynbgw_saved_find(List *rows, int n)
{
	ListCell   *lc;

	foreach(lc, rows)
	{
		DynbgwSaved *row = lfirst(lc);

		if (row->n == n)
			return row;
	}
	return NULL;
}

/* The schema of the extension whose SQL function is being called. */
static Oid
dynbgw_caller_schema(FunctionCallInfo fcinfo)
{
	return get_func_namespace(fcinfo->flinfo->fn_oid);
}

/*
 * A saved definition of n that the current role does not own stands in the
 * way of saving its own: say whose it is, and how it can be freed.
 */
void
dynbgw_persist_check(FunctionCallInfo fcinfo, int n)
{
	DynbgwSaved *row = dynbgw_saved_find(dynbgw_saved_read(dynbgw_caller_schema(fcinfo)), n);
	char	   *owner;

	if (row == NULL || row->owner == GetUserId())
		return;
	owner = GetUserNameFromId(row->owner, true);
	if (owner == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("dynbgw worker %d is saved by a dropped role (OID %u) in this database",
						n, row->owner),
				 errhint("Choose another number, or ask a superuser to delete it: DELETE FROM dynbgw_definitions WHERE n = %d.",
						 n)));
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("dynbgw worker %d is saved by role \"%s\" in this database",
					n, owner),
			 errhint("Choose another number, or ask role \"%s\" or a superuser to delete it: DELETE FROM dynbgw_definitions WHERE n = %d.",
					 owner, n)));
}

/* dynbgw_launch's argument argno as a parameter of an SPI query. */
static void
dynbgw_arg_param(FunctionCallInfo fcinfo, int argno, Datum *value, char *null)
{
	*value = PG_ARGISNULL(argno) ? (Datum) 0 : PG_GETARG_DATUM(argno);
	*null = PG_ARGISNULL(argno) ? 'n' : ' ';
}

/*
 * An SPI query on the extension's table of saved workers (pools: of saved
 * pools), its name filled in for %s.
 */
static int
dynbgw_definitions_execute(FunctionCallInfo fcinfo, bool pools,
						   const char *query, int nargs, Oid *argtypes,
						   Datum *values, const char *nulls)
{
	Oid			schema = dynbgw_caller_schema(fcinfo);
	char	   *table;
	int			save_nestlevel;
	int			ret;

	/* Refuses the layout of 1.1 with a clear error. */
	table_close(pools ? dynbgw_pool_definitions_open(schema) :
				dynbgw_definitions_open(schema, AccessShareLock),
				AccessShareLock);
	table = quote_qualified_identifier(get_namespace_name(schema),
									   pools ? DYNBGW_POOL_DEFINITIONS :
									   DYNBGW_DEFINITIONS);

	/*
	 * A superuser's session may have a search_path that a database owner
	 * set: nothing in these queries may resolve through it.
	 */
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SPI_connect();
	ret = SPI_execute_with_args(psprintf(query, table), nargs, argtypes,
								values, nulls, false, 0);
	if (ret < 0)
		elog(ERROR, "could not change the saved dynbgw definitions: %s",
			 SPI_result_code_string(ret));
	ret = (int) SPI_processed;
	SPI_finish();
	AtEOXact_GUC(true, save_nestlevel);
	return ret;
}

/*
 * Save worker n's definition, as given to dynbgw_launch (fcinfo) and as
 * resolved (def), as the current role's, replacing its earlier one.  As
 * the caller, so that row security and the guard see who writes.
 */
void
dynbgw_persist_save(FunctionCallInfo fcinfo, int n, const DynbgwDefinition *def)
{
	/* The columns every version's table has, then those of later ones. */
	Oid			argtypes[DYNBGW_SAVED_COLUMNS] = {INT4OID, OIDOID, TEXTOID,
		INTERVALOID, OIDOID, OIDOID, INT8OID, INTERVALOID, INTERVALOID, TEXTOID,
	TEXTOID};
	Datum		values[DYNBGW_SAVED_COLUMNS];
	char		nulls[DYNBGW_SAVED_COLUMNS];
	int			nparams = 11;
	StringInfoData columns;
	StringInfoData params;
	StringInfoData updates;

	dynbgw_persist_check(fcinfo, n);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int32GetDatum(n);
	values[1] = ObjectIdGetDatum(GetUserId());
	dynbgw_arg_param(fcinfo, 1, &values[2], &nulls[2]); /* command */
	dynbgw_arg_param(fcinfo, 2, &values[3], &nulls[3]); /* naptime */
	/* No database named: this one, wherever the data goes. */
	values[4] = ObjectIdGetDatum(def->dboid);
	nulls[4] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[5] = ObjectIdGetDatum(def->roleoid);
	dynbgw_arg_param(fcinfo, 5, &values[6], &nulls[6]); /* runs */
	dynbgw_arg_param(fcinfo, 6, &values[7], &nulls[7]); /* restart */
	dynbgw_arg_param(fcinfo, 9, &values[8], &nulls[8]); /* run_timeout */
	values[9] = def->has_schedule ?
		CStringGetTextDatum(def->schedule_text) : (Datum) 0;
	nulls[9] = def->has_schedule ? ' ' : 'n';
	values[10] = def->has_schedule ?
		CStringGetTextDatum(def->timezone) : (Datum) 0;
	nulls[10] = def->has_schedule ? ' ' : 'n';

	/*
	 * The launch of an earlier version has fewer arguments, its table fewer
	 * columns.
	 */
	initStringInfo(&columns);
	initStringInfo(&params);
	initStringInfo(&updates);
	for (int col = DYNBGW_SAVED_FIRST_OPTIONAL;
		 col < DYNBGW_SAVED_COLUMNS && DYNBGW_LAUNCH_ARG_OF(col) < PG_NARGS();
		 col++)
	{
		argtypes[nparams] = dynbgw_columns[col].type;
		dynbgw_arg_param(fcinfo, DYNBGW_LAUNCH_ARG_OF(col), &values[nparams],
						 &nulls[nparams]);
		nparams++;
		appendStringInfo(&columns, ", %s", dynbgw_columns[col].name);
		appendStringInfo(&params, ", $%d", nparams);
		appendStringInfo(&updates, ", %s = $%d", dynbgw_columns[col].name,
						 nparams);
	}

	if (dynbgw_definitions_execute(fcinfo, false,
								   psprintf("INSERT INTO %%s AS d (n, owner, command, naptime, database, role, runs, restart, run_timeout, schedule, timezone%s) "
											"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11%s) "
											"ON CONFLICT (n) DO UPDATE SET owner = $2, command = $3, naptime = $4, database = $5, role = $6, runs = $7, restart = $8, run_timeout = $9, schedule = $10, timezone = $11%s, saved_at = pg_catalog.now()",
											columns.data, params.data,
											updates.data),
								   nparams, argtypes, values, nulls) != 1)
		elog(ERROR, "could not save the definition of dynbgw worker %d", n);
}

/*
 * Delete worker n's saved definition, if the current role may.  A forget
 * that finds nothing to delete says so.
 */
void
dynbgw_persist_forget(FunctionCallInfo fcinfo, int n)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(n)};

	if (dynbgw_definitions_execute(fcinfo, false,
								   "DELETE FROM %s WHERE n OPERATOR(pg_catalog.=) $1",
								   1, argtypes, values, NULL) == 0)
		ereport(NOTICE,
				(errmsg("no saved definition of dynbgw worker %d in database \"%s\"",
						n, get_database_name(MyDatabaseId)),
				 errdetail("Definitions are saved in the database a worker was launched from, and each role may forget only its own.")));
}

/*
 * Save a pool's definition, as given to dynbgw_pool_create (fcinfo) and
 * as resolved (pool), as the current role's, replacing its earlier one.
 * A saved pool of that name that another role owns stands in the way.
 */
void
dynbgw_persist_pool_save(FunctionCallInfo fcinfo, const DynbgwPoolInfo *pool)
{
	Oid			argtypes[6] = {TEXTOID, OIDOID, INT4OID, OIDOID, OIDOID, INT4OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	ListCell   *lc;

	foreach(lc, dynbgw_saved_pools_read(dynbgw_caller_schema(fcinfo)))
	{
		DynbgwSavedPool *saved = lfirst(lc);
		char	   *owner;

		if (strcmp(saved->name, pool->name) != 0 || saved->owner == GetUserId())
			continue;
		owner = GetUserNameFromId(saved->owner, true);
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 owner ?
				 errmsg("dynbgw pool \"%s\" is saved by role \"%s\" in this database",
						pool->name, owner) :
				 errmsg("dynbgw pool \"%s\" is saved by a dropped role (OID %u) in this database",
						pool->name, saved->owner),
				 errhint("Choose another name, or ask its owner or a superuser to delete it from dynbgw_pool_definitions.")));
	}

	values[0] = CStringGetTextDatum(pool->name);
	values[1] = ObjectIdGetDatum(GetUserId());
	values[2] = Int32GetDatum(pool->size);
	/* No database named: this one, wherever the data goes. */
	values[3] = ObjectIdGetDatum(pool->dboid);
	nulls[3] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[4] = ObjectIdGetDatum(pool->roleoid);
	values[5] = Int32GetDatum(pool->queue_size);
	if (dynbgw_definitions_execute(fcinfo, true,
								   "INSERT INTO %s AS d (name, owner, size, database, role, queue_size) "
								   "VALUES ($1, $2, $3, $4, $5, $6) "
								   "ON CONFLICT (name) DO UPDATE SET owner = $2, size = $3, database = $4, role = $5, queue_size = $6, saved_at = pg_catalog.now()",
								   6, argtypes, values, nulls) != 1)
		elog(ERROR, "could not save the definition of dynbgw pool \"%s\"",
			 pool->name);
}

/* Delete a pool's saved definition, if the current role may. */
void
dynbgw_persist_pool_forget(FunctionCallInfo fcinfo, const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	if (dynbgw_definitions_execute(fcinfo, true,
								   "DELETE FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
								   1, argtypes, values, NULL) == 0)
		ereport(NOTICE,
				(errmsg("no saved definition of dynbgw pool \"%s\" in database \"%s\"",
						name, get_database_name(MyDatabaseId)),
				 errdetail("Pools are saved in the database they were made from, and each role may forget only its own.")));
}

/*
 * The trigger on dynbgw_definitions: a row's owner is the role that wrote
 * it, unless a superuser wrote it.  Fires for every writer (ENABLE ALWAYS),
 * BYPASSRLS and pg_write_all_data included.
 */
Datum
dynbgw_definitions_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	AttrNumber	owner_att;
	Oid			me = GetUserId();
	bool		is_superuser = superuser();
	HeapTuple	newtuple;
	Datum		new_owner;
	bool		isnull;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"dynbgw_definitions_guard\" must be fired BEFORE ROW")));
	rel = trigdata->tg_relation;
	owner_att = get_attnum(RelationGetRelid(rel), "owner");
	if (owner_att == InvalidAttrNumber)
		elog(ERROR, "column \"owner\" of table \"%s\" does not exist",
			 RelationGetRelationName(rel));

	/* Whose row it was: only the owner and superusers change it. */
	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) && !is_superuser)
	{
		HeapTuple	old = trigdata->tg_trigtuple;
		Datum		owner = heap_getattr(old, owner_att, RelationGetDescr(rel), &isnull);

		if (isnull || DatumGetObjectId(owner) != me)
		{
			char	   *name = isnull ? NULL :
				GetUserNameFromId(DatumGetObjectId(owner), true);
			AttrNumber	n_att = get_attnum(RelationGetRelid(rel), "n");
			AttrNumber	name_att = get_attnum(RelationGetRelid(rel), "name");
			bool		key_isnull = true;
			Datum		key = 0;

			/* Saved workers have a number, saved pools a name. */
			if (n_att != InvalidAttrNumber || name_att != InvalidAttrNumber)
				key = heap_getattr(old, n_att != InvalidAttrNumber ? n_att : name_att,
								   RelationGetDescr(rel), &key_isnull);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 n_att != InvalidAttrNumber ?
					 errmsg("permission denied to change the saved definition of dynbgw worker %d",
							key_isnull ? 0 : DatumGetInt32(key)) :
					 errmsg("permission denied to change the saved definition of dynbgw pool \"%s\"",
							key_isnull ? "" : TextDatumGetCString(key)),
					 name ?
					 errdetail("It is owned by role \"%s\"; only that role and superusers may change it.",
							   name) :
					 errdetail("It is owned by a dropped role; only superusers may change it.")));
		}
	}
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		return PointerGetDatum(trigdata->tg_trigtuple);

	/* Whose row it becomes. */
	newtuple = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ?
		trigdata->tg_trigtuple : trigdata->tg_newtuple;
	new_owner = heap_getattr(newtuple, owner_att, RelationGetDescr(rel), &isnull);
	if (isnull)
	{
		int			cols[1] = {owner_att};
		Datum		values[1] = {ObjectIdGetDatum(me)};
		bool		nulls[1] = {false};

		return PointerGetDatum(heap_modify_tuple_by_cols(newtuple,
														 RelationGetDescr(rel),
														 1, cols, values, nulls));
	}
	if (DatumGetObjectId(new_owner) != me && !is_superuser)
	{
		char	   *name = GetUserNameFromId(DatumGetObjectId(new_owner), true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 name ?
				 errmsg("permission denied to save a dynbgw definition in the name of role \"%s\"",
						name) :
				 errmsg("permission denied to save a dynbgw definition in the name of role with OID %u",
						DatumGetObjectId(new_owner)),
				 errdetail("Only superusers may save definitions that another role owns.")));
	}
	return PointerGetDatum(newtuple);
}

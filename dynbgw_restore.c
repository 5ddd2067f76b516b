/*-------------------------------------------------------------------------
 *
 * dynbgw_restore.c
 *		Launching saved definitions again: dynbgw_restore(), and with the
 *		library preloaded, the workers that run it at every start.
 *
 * dynbgw_restore() launches the saved definitions of its database that the
 * caller may act for (all for a superuser; otherwise those of roles it may
 * SET ROLE to), each as its owner, so that the owner's authority as it is
 * now decides, and makes its saved pools that do not exist, likewise.
 * Worker numbers and pool names are server-wide and definitions are per
 * database, so a number held by anything but this very definition, or a
 * pool of the name that is another, is reported, never taken for it.
 * Nothing here runs SQL: the tables are read in C and dynbgw_launch and
 * dynbgw_pool_create are called through fmgr, so a superuser's restore
 * runs nothing that a search_path or a database owner's settings could
 * redirect.
 *
 * With dynbgw in shared_preload_libraries, the restore launcher starts with
 * the server and again after each crash-restart.  It is connected to no
 * database, reads pg_database to find those of dynbgw.restore_databases,
 * and starts one restore worker per database, one after the other, each
 * connected to its database as the bootstrap superuser.  So restoring
 * takes one background worker slot for as long as the server runs, and
 * one more while a database is restored.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* reading the catalogs and calling dynbgw_launch */
#include "access/genam.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "funcapi.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

/* the restore workers */
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_restore);

char	   *dynbgw_restore_databases = NULL;

/*
 * dynbgw_launch's arguments, in the order of version 1.3's definition;
 * that of 1.2 has the first 15, that of 1.1 and 1.1.1 the first 13.
 */
#define DYNBGW_LAUNCH_NARGS 16
#define DYNBGW_LAUNCH_NARGS_1_2 15
#define DYNBGW_LAUNCH_NARGS_1_1 13

/* How long the launcher sleeps between looks at a restore worker. */
#define DYNBGW_RESTORE_POLL_MS	1000

/* What became of one saved definition, or of a saved pool's worker. */
typedef struct DynbgwRestored
{
	int			n;				/* 0: a saved pool that did not start */
	int			pid;			/* 0: none */
	char	   *error;			/* NULL: launched, or already running */
	const char *pool;			/* NULL: a saved worker */
} DynbgwRestored;

/* dynbgw_pool_create's arguments, in the order of version 1.4's definition. */
#define DYNBGW_POOL_CREATE_NARGS 6

/* The schema of an extension, read from pg_extension. */
Oid
dynbgw_extension_schema(Oid extoid)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			schema = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return schema;
}

/*
 * The extension's dynbgw_launch (version 1.3's signature, or an earlier one
 * until the update) in its schema, found without search_path; a function
 * of that name that is not the extension's does not count, whichever
 * signature it takes.  InvalidOid if missing_ok and there is none.
 */
Oid
dynbgw_launch_oid(Oid extoid, Oid schema, bool missing_ok)
{
	static const Oid argtypes[DYNBGW_LAUNCH_NARGS] = {
		INT4OID, TEXTOID, INTERVALOID, NAMEOID, NAMEOID, INT8OID, INTERVALOID,
		TEXTOID, INTERVALOID, INTERVALOID, TEXTOID, TEXTOID, BOOLOID, INT4OID,
		INTERVALOID, BOOLOID
	};
	static const int nargs[] = {DYNBGW_LAUNCH_NARGS, DYNBGW_LAUNCH_NARGS_1_2,
	DYNBGW_LAUNCH_NARGS_1_1};
	List	   *name = list_make2(makeString(get_namespace_name(schema)),
								  makeString("dynbgw_launch"));
	bool		foreign = false;

	for (int i = 0; i < (int) lengthof(nargs); i++)
	{
		Oid			funcoid = LookupFuncName(name, nargs[i], argtypes, true);

		if (!OidIsValid(funcoid))
			continue;
		if (getExtensionOfObject(ProcedureRelationId, funcoid) == extoid)
			return funcoid;
		foreign = true;
	}
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 foreign ?
				 errmsg("function dynbgw_launch is not the dynbgw extension's") :
				 errmsg("function dynbgw_launch of the dynbgw extension does not exist")));
	return InvalidOid;
}

/*
 * Whether worker n, as the registry holds it, is this saved definition:
 * launched from this database by the row's owner, as its role, in its
 * database, with its command.  Otherwise an error message that says what
 * holds the number; NULL and *pid 0 when nothing does.
 */
static char *
dynbgw_holder(const DynbgwSaved *row, Oid dboid, int *pid)
{
	DynbgwRegistry *reg = dynbgw_registry();
	DynbgwSlot *copy = palloc(sizeof(DynbgwSlot));
	const DynbgwDefinition *def = &copy->def;
	const char *command = row->isnull[DYNBGW_SAVED_COMMAND] ? "" :
		TextDatumGetCString(row->values[DYNBGW_SAVED_COMMAND]);
	char	   *role;
	char	   *database;

	if (row->n < 1 || row->n > reg->capacity)
		return psprintf("dynbgw worker %d is beyond dynbgw.max_workers (%d)",
						row->n, reg->capacity);
	*pid = 0;
	if (!dynbgw_slot_copy(row->n, copy))
		return NULL;
	*pid = copy->pid;
	if (def->kind == DYNBGW_KIND_SQL &&
		def->launch_dboid == MyDatabaseId &&
		def->launcher_roleoid == row->owner &&
		def->roleoid == row->role &&
		def->dboid == dboid &&
		strcmp(def->command, command) == 0)
		return NULL;

	*pid = 0;
	role = GetUserNameFromId(def->roleoid, true);
	database = OidIsValid(def->dboid) ? get_database_name(def->dboid) : NULL;
	return psprintf("dynbgw worker %d is taken by another worker: it runs as %s%s%s in %s%s%s",
					row->n,
					role ? "role \"" : "a dropped role", role ? role : "",
					role ? "\"" : "",
					database ? "database \"" : "no database",
					database ? database : "", database ? "\"" : "");
}

/*
 * The database (argument argno of fc) and role (the next) of a saved
 * definition (what) by name: NULL for its own database and its owner, an
 * error if either is gone.
 */
static void
dynbgw_saved_names(FunctionCallInfo fc, int argno, Oid database, Oid role,
				   Oid owner, const char *what)
{
	char	   *dbname = NULL;
	char	   *rolename = NULL;

	if (OidIsValid(database) &&
		(dbname = get_database_name(database)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_DATABASE),
				 errmsg("the database of %s was dropped", what)));
	if (role != owner && (rolename = GetUserNameFromId(role, true)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that %s runs as was dropped", what)));
	fc->args[argno].isnull = dbname == NULL;
	if (dbname != NULL)
		fc->args[argno].value = DirectFunctionCall1(namein,
													CStringGetDatum(dbname));
	fc->args[argno + 1].isnull = rolename == NULL;
	if (rolename != NULL)
		fc->args[argno + 1].value = DirectFunctionCall1(namein,
														CStringGetDatum(rolename));
}

/*
 * dynbgw_launch's arguments (fc, of the number its definition has) for a
 * saved definition: its own, with the database and role named, and no
 * waiting, replacing or saving again.
 */
static void
dynbgw_restore_args(FunctionCallInfo fc, const DynbgwSaved *row)
{
	for (int i = 0; i < fc->nargs; i++)
	{
		fc->args[i].value = (Datum) 0;
		fc->args[i].isnull = true;
	}
#define DYNBGW_ARG(i, col) \
	(fc->args[i].value = row->values[col], fc->args[i].isnull = row->isnull[col])
	DYNBGW_ARG(0, DYNBGW_SAVED_N);
	DYNBGW_ARG(1, DYNBGW_SAVED_COMMAND);
	DYNBGW_ARG(2, DYNBGW_SAVED_NAPTIME);
	DYNBGW_ARG(5, DYNBGW_SAVED_RUNS);
	DYNBGW_ARG(6, DYNBGW_SAVED_RESTART);
	DYNBGW_ARG(9, DYNBGW_SAVED_RUN_TIMEOUT);
	DYNBGW_ARG(10, DYNBGW_SAVED_SCHEDULE);
	DYNBGW_ARG(11, DYNBGW_SAVED_TIMEZONE);
	for (int col = DYNBGW_SAVED_FIRST_OPTIONAL;
		 col < DYNBGW_SAVED_COLUMNS && DYNBGW_LAUNCH_ARG_OF(col) < fc->nargs;
		 col++)
		DYNBGW_ARG(DYNBGW_LAUNCH_ARG_OF(col), col);
#undef DYNBGW_ARG
	dynbgw_saved_names(fc, 3, row->database, row->role, row->owner,
					   psprintf("dynbgw worker %d", row->n));
	fc->args[7].value = CStringGetTextDatum("error");
	fc->args[7].isnull = false;
	fc->args[8].value = IntervalPGetDatum(palloc0(sizeof(Interval)));
	fc->args[8].isnull = false;
	fc->args[12].value = BoolGetDatum(false);
	fc->args[12].isnull = false;
}

/*
 * Call fc, to act on a saved definition (what, of table) whose row owner
 * wrote, as that role, once the row can be trusted: its owner exists, and
 * wrote it, as far as the table's owner could have not.  fc's function
 * must be one the owner may call.
 */
static Datum
dynbgw_call_as_owner(FunctionCallInfo fc, Oid owner, Oid table_owner,
					 const char *what, const char *table)
{
	Oid			saved_userid;
	int			saved_sec_context;
	Datum		result;
	AclResult	aclresult;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that saved %s was dropped", what)));

	/*
	 * The table's owner may disable its guard and write rows in any name:
	 * from a table a non-superuser owns, only that role's rows are its own.
	 */
	if (owner != table_owner && !superuser_arg(table_owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the saved definition of %s cannot be trusted", what),
				 errdetail("Table \"%s\" is owned by role \"%s\", which may write rows in any role's name.",
						   table, GetUserNameFromId(table_owner, false)),
				 errhint("Give the table back to a superuser: ALTER TABLE %s OWNER TO ...",
						 table)));
	aclresult = object_aclcheck(ProcedureRelationId, fc->flinfo->fn_oid, owner,
								ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION,
					   get_func_name(fc->flinfo->fn_oid));

	/* As the owner, as PostgreSQL runs work on another role's behalf. */
	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	SetUserIdAndSecContext(owner,
						   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	result = FunctionCallInvoke(fc);
	SetUserIdAndSecContext(saved_userid, saved_sec_context);
	return result;
}

/* Launch one saved definition as its owner; its PID, or 0 if it has none. */
static int
dynbgw_restore_one(Oid launch_oid, const DynbgwSaved *row)
{
	FmgrInfo	flinfo;
	Datum		result;

	LOCAL_FCINFO(fc, DYNBGW_LAUNCH_NARGS);

	fmgr_info(launch_oid, &flinfo);
	InitFunctionCallInfoData(*fc, &flinfo, flinfo.fn_nargs, InvalidOid,
							 NULL, NULL);
	dynbgw_restore_args(fc, row);
	result = dynbgw_call_as_owner(fc, row->owner, row->table_owner,
								  psprintf("dynbgw worker %d", row->n),
								  "dynbgw_definitions");
	return fc->isnull ? 0 : DatumGetInt32(result);
}

/*
 * A definition whose worker does not start within this long is given up,
 * so that one cannot hold up the others (a worker blocked connecting, say).
 */
#define DYNBGW_RESTORE_LAUNCH_TIMEOUT_MS	10000

static volatile sig_atomic_t restore_timed_out = false;
static TimeoutId restore_timeout_id = MAX_TIMEOUTS;

/* Ends a launch that takes too long, as statement_timeout would. */
static void
dynbgw_restore_timeout_handler(void)
{
	restore_timed_out = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/* One saved definition, unless this very definition holds its number. */
static void
dynbgw_restore_row(Oid launch_oid, const void *saved, DynbgwRestored *r)
{
	const DynbgwSaved *row = saved;
	Oid			dboid = OidIsValid(row->database) ? row->database : MyDatabaseId;

	r->error = dynbgw_holder(row, dboid, &r->pid);
	if (r->error != NULL || r->pid != 0)
		return;
	r->pid = dynbgw_restore_one(launch_oid, row);
}

/*
 * The extension's dynbgw_pool_create in its schema, as dynbgw_launch_oid()
 * finds dynbgw_launch.
 */
static Oid
dynbgw_pool_create_oid(Oid extoid, Oid schema)
{
	static const Oid argtypes[DYNBGW_POOL_CREATE_NARGS] = {
		TEXTOID, INT4OID, NAMEOID, NAMEOID, INT4OID, BOOLOID
	};
	List	   *name = list_make2(makeString(get_namespace_name(schema)),
								  makeString("dynbgw_pool_create"));
	Oid			funcoid = LookupFuncName(name, DYNBGW_POOL_CREATE_NARGS,
										 argtypes, true);

	if (!OidIsValid(funcoid) ||
		getExtensionOfObject(ProcedureRelationId, funcoid) != extoid)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function dynbgw_pool_create of the dynbgw extension does not exist")));
	return funcoid;
}

/*
 * One saved pool, made as its owner, unless a pool of its name exists: the
 * same one, which is left alone, or another, which is reported.
 */
static void
dynbgw_restore_pool(Oid create_oid, const void *saved, DynbgwRestored *r)
{
	const DynbgwSavedPool *row = saved;
	Oid			dboid = OidIsValid(row->database) ? row->database : MyDatabaseId;
	char	   *what = psprintf("dynbgw pool \"%s\"", row->name);
	DynbgwPoolInfo pool;
	FmgrInfo	flinfo;

	LOCAL_FCINFO(fc, DYNBGW_POOL_CREATE_NARGS);

	if (dynbgw_pool_get(row->name, 0, &pool))
	{
		DynbgwPoolInfo saved;

		memset(&saved, 0, sizeof(saved));
		saved.size = row->size;
		saved.queue_size = row->queue_size;
		saved.dboid = dboid;
		saved.roleoid = row->role;
		if (pool.owner != row->owner || !dynbgw_pool_is(&pool, &saved))
			r->error = psprintf("%s exists, but is not this saved pool", what);
		return;
	}

	fmgr_info(create_oid, &flinfo);
	InitFunctionCallInfoData(*fc, &flinfo, DYNBGW_POOL_CREATE_NARGS,
							 InvalidOid, NULL, NULL);
	fc->args[0].value = CStringGetTextDatum(row->name);
	fc->args[1].value = Int32GetDatum(row->size);
	fc->args[4].value = Int32GetDatum(row->queue_size);
	fc->args[5].value = BoolGetDatum(false);
	fc->args[0].isnull = fc->args[1].isnull = false;
	fc->args[4].isnull = fc->args[5].isnull = false;
	dynbgw_saved_names(fc, 2, row->database, row->role, row->owner, what);
	(void) dynbgw_call_as_owner(fc, row->owner, row->table_owner, what,
								"dynbgw_pool_definitions");
}

/* The workers of a pool that was restored, or was there already. */
static List *
dynbgw_restored_pool_workers(const DynbgwPoolInfo *pool)
{
	int			capacity = dynbgw_registry()->capacity;
	int		   *numbers = palloc(capacity * sizeof(int));
	uint64	   *generations = palloc(capacity * sizeof(uint64));
	int			count = dynbgw_slot_pool_workers(pool->id, numbers, generations);
	List	   *rows = NIL;

	for (int i = 0; i < count; i++)
	{
		DynbgwRestored *r = palloc0(sizeof(DynbgwRestored));
		DynbgwOccupant occupant;

		dynbgw_slot_look(numbers[i], &occupant);
		r->n = numbers[i];
		r->pid = occupant.generation == generations[i] ? occupant.pid : 0;
		r->pool = pstrdup(pool->name);
		rows = lappend(rows, r);
	}
	return rows;
}

/*
 * Restore one saved definition or pool (restore: how), in a subtransaction
 * and within DYNBGW_RESTORE_LAUNCH_TIMEOUT_MS, so that its failure, kept in
 * r->error, does not stop the others.  As PL/pgSQL's WHEN OTHERS, a cancel
 * of the call is never caught.
 */
static void
dynbgw_restore_guarded(void (*restore) (Oid, const void *, DynbgwRestored *),
					   Oid funcoid, const void *saved, const char *what,
					   DynbgwRestored *r)
{
	MemoryContext callcontext = CurrentMemoryContext;
	ResourceOwner callowner = CurrentResourceOwner;
	Oid			saved_userid;
	int			saved_sec_context;

	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	restore_timed_out = false;
	dynbgw_launch_was_stopped = false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(callcontext);
	PG_TRY();
	{
		enable_timeout_after(restore_timeout_id,
							 DYNBGW_RESTORE_LAUNCH_TIMEOUT_MS);
		restore(funcoid, saved, r);
		disable_timeout(restore_timeout_id, false);
		/* Fired just as the launch returned: nothing left to cancel. */
		if (restore_timed_out)
			QueryCancelPending = false;
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(callcontext);
		CurrentResourceOwner = callowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(restore_timeout_id, false);
		MemoryContextSwitchTo(callcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		SetUserIdAndSecContext(saved_userid, saved_sec_context);
		MemoryContextSwitchTo(callcontext);
		CurrentResourceOwner = callowner;

		/*
		 * 57014 is also what a launch says when its worker was stopped, and
		 * what our own deadline raises; only a cancel of the call ends the
		 * call.
		 */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
			!restore_timed_out && !dynbgw_launch_was_stopped)
			ReThrowError(edata);
		r->pid = 0;
		r->error = restore_timed_out ?
			psprintf("%s did not start within %d seconds", what,
					 DYNBGW_RESTORE_LAUNCH_TIMEOUT_MS / 1000) :
			edata->message;
	}
	PG_END_TRY();
}

/*
 * Restore the saved definitions and pools of the extension in this schema
 * that the current role may act for: a list of DynbgwRestored, the
 * workers ordered by n, then each pool's workers, from the highest number.
 */
static List *
dynbgw_restore_rows(Oid extoid, Oid schema)
{
	Oid			launch_oid = dynbgw_launch_oid(extoid, schema, false);
	List	   *pools = dynbgw_saved_pools_read(schema);
	Oid			create_oid = pools != NIL ?
		dynbgw_pool_create_oid(extoid, schema) : InvalidOid;
	List	   *restored = NIL;
	ListCell   *lc;

	if (restore_timeout_id == MAX_TIMEOUTS)
		restore_timeout_id = RegisterTimeout(USER_TIMEOUT,
											 dynbgw_restore_timeout_handler);

	foreach(lc, dynbgw_saved_read(schema))
	{
		DynbgwSaved *row = lfirst(lc);
		DynbgwRestored *r = palloc0(sizeof(DynbgwRestored));

		if (!superuser() && !member_can_set_role(GetUserId(), row->owner))
			continue;
		r->n = row->n;
		restored = lappend(restored, r);
		dynbgw_restore_guarded(dynbgw_restore_row, launch_oid, row,
							   psprintf("dynbgw worker %d", row->n), r);
	}

	foreach(lc, pools)
	{
		DynbgwSavedPool *row = lfirst(lc);
		DynbgwRestored *r = palloc0(sizeof(DynbgwRestored));
		DynbgwPoolInfo pool;

		if (!superuser() && !member_can_set_role(GetUserId(), row->owner))
			continue;
		r->pool = row->name;
		dynbgw_restore_guarded(dynbgw_restore_pool, create_oid, row,
							   psprintf("dynbgw pool \"%s\"", row->name), r);
		if (r->error == NULL && dynbgw_pool_get(row->name, 0, &pool))
			restored = list_concat(restored,
								   dynbgw_restored_pool_workers(&pool));
		else
			restored = lappend(restored, r);
	}
	return restored;
}

/*
 * dynbgw_restore() returns setof (n integer, pid integer, error text,
 *								  pool text)
 *
 * One row per saved definition of this database that the caller may act
 * for: the PID of the worker that runs it (launched now, or already
 * running), NULL while it waits to be restarted, or the error that kept it
 * from launching; then one row per worker of each saved pool, made now or
 * already there, or one with the error that kept the pool from being made.
 */
Datum
dynbgw_restore(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, dynbgw_restore_rows(get_extension_oid("dynbgw", false),
									get_func_namespace(fcinfo->flinfo->fn_oid)))
	{
		DynbgwRestored *r = lfirst(lc);
		Datum		values[4] = {Int32GetDatum(r->n), Int32GetDatum(r->pid), 0, 0};
		bool		nulls[4] = {r->n == 0, r->pid == 0, r->error == NULL,
		r->pool == NULL};

		if (r->error != NULL)
			values[2] = CStringGetTextDatum(r->error);
		if (r->pool != NULL)
			values[3] = CStringGetTextDatum(r->pool);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---- with the library preloaded ---- */

/* GUC check hook: a list of database names. */
bool
dynbgw_check_restore_databases(char **newval, void **extra, GucSource source)
{
	char	   *list = pstrdup(*newval ? *newval : "");
	List	   *names;
	bool		ok = SplitIdentifierString(list, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(list);
	return ok;
}

/* Called from _PG_init while shared_preload_libraries are loaded. */
void
dynbgw_register_restore_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	/* A connection to no database: pg_database, and SIGUSR1 handled. */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "dynbgw", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dynbgw_restore_launcher_main",
			BGW_MAXLEN);
	strlcpy(worker.bgw_name, "dynbgw restore launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "dynbgw restore launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* dynbgw's own entry points run only as what they were registered for. */
static void
dynbgw_require_registered_as(const char *function)
{
	if (MyBgworkerEntry == NULL ||
		strcmp(MyBgworkerEntry->bgw_library_name, "dynbgw") != 0 ||
		strcmp(MyBgworkerEntry->bgw_function_name, function) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a background worker entry point", function)));
}

/*
 * Start the restore worker of one database and wait until it has exited,
 * serving shutdown requests.  False if the server is shutting down.
 */
static bool
dynbgw_restore_database(const char *dbname, Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	dynbgw_worker_template(&worker, "dynbgw_restore_database_main",
						   BGW_NEVER_RESTART);
	snprintf(worker.bgw_name, BGW_MAXLEN, "dynbgw restore %s", dbname);
	strlcpy(worker.bgw_type, "dynbgw restore", BGW_MAXLEN);
	memcpy(worker.bgw_extra, &dboid, sizeof(dboid));
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(LOG,
				(errmsg("could not start the dynbgw restore of database \"%s\"",
						dbname),
				 errhint("Raise max_worker_processes.")));
		return true;
	}

	/* The postmaster's SIGUSR1 sets our latch; poll as well, to be sure. */
	while (GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED)
	{
		if (ShutdownRequestPending)
		{
			TerminateBackgroundWorker(handle);
			return false;
		}
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 DYNBGW_RESTORE_POLL_MS,
						 dynbgw_wait_event(DYNBGW_WAIT_LAUNCH));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/*
 * A database's OID by name, without a database of our own: a heap scan of
 * pg_database, as the autovacuum launcher lists databases (with no
 * database, the relation cache cannot open the catalog's indexes yet).
 */
static Oid
dynbgw_database_oid(const char *dbname)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	Oid			dboid = InvalidOid;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (strcmp(NameStr(db->datname), dbname) == 0)
			dboid = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dboid;
}

/*
 * The restore launcher: restores each database of dynbgw.restore_databases
 * in turn, then waits until the server stops, so that the postmaster
 * starts it again after a crash-restart.  A stop request ends it cleanly,
 * at shutdown or from pg_terminate_backend (it then stays away until the
 * next server start).
 */
void
dynbgw_restore_launcher_main(Datum main_arg)
{
	List	   *names;
	ListCell   *lc;

	dynbgw_require_registered_as("dynbgw_restore_launcher_main");
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	/* The check hook made sure the list parses. */
	if (!SplitIdentifierString(pstrdup(dynbgw_restore_databases), ',', &names))
		proc_exit(0);
	foreach(lc, names)
	{
		const char *dbname = lfirst(lc);
		Oid			dboid;

		dboid = dynbgw_database_oid(dbname);
		if (!OidIsValid(dboid))
			ereport(LOG,
					(errmsg("database \"%s\" of dynbgw.restore_databases does not exist; not restored",
							dbname)));
		else if (!dynbgw_restore_database(dbname, dboid))
			proc_exit(0);
	}

	while (!ShutdownRequestPending)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
						 dynbgw_wait_event(DYNBGW_WAIT_NAP));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
	proc_exit(0);
}

/* A restore worker: restores its database as the bootstrap superuser. */
void
dynbgw_restore_database_main(Datum main_arg)
{
	Oid			dboid;
	Oid			extoid;
	char	   *dbname;

	dynbgw_require_registered_as("dynbgw_restore_database_main");
	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(dboid));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "restoring saved dynbgw definitions");
	dbname = get_database_name(MyDatabaseId);
	extoid = get_extension_oid("dynbgw", true);
	if (!OidIsValid(extoid))
		ereport(LOG,
				(errmsg("dynbgw is not installed in database \"%s\"; nothing to restore",
						dbname)));
	else
	{
		ListCell   *lc;

		foreach(lc, dynbgw_restore_rows(extoid, dynbgw_extension_schema(extoid)))
		{
			DynbgwRestored *r = lfirst(lc);

			if (r->pool != NULL && r->error != NULL)
				ereport(LOG,
						(errmsg("dynbgw pool \"%s\" of database \"%s\" was not restored: %s",
								r->pool, dbname, r->error)));
			else if (r->pool != NULL)
				ereport(LOG,
						(errmsg("dynbgw worker %d of pool \"%s\" of database \"%s\" restored, PID %d",
								r->n, r->pool, dbname, r->pid)));
			else if (r->error != NULL)
				ereport(LOG,
						(errmsg("dynbgw worker %d of database \"%s\" was not restored: %s",
								r->n, dbname, r->error)));
			else if (r->pid != 0)
				ereport(LOG,
						(errmsg("dynbgw worker %d of database \"%s\" restored, PID %d",
								r->n, dbname, r->pid)));
			else
				ereport(LOG,
						(errmsg("dynbgw worker %d of database \"%s\" restored, waiting to restart",
								r->n, dbname)));
		}
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

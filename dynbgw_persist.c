/*-------------------------------------------------------------------------
 *
 * dynbgw_persist.c
 *		Definitions that survive a restart: kept in a table, launched again
 *		by dynbgw_restore(), at every start when the library is preloaded.
 *
 * dynbgw_launch(..., persist => true) saves the definition in the
 * extension's table dynbgw_definitions of the database it was launched
 * from, in the launching transaction and before the worker starts, so that
 * a definition that cannot be saved is not launched.  The table is marked
 * for pg_dump, and row security shows each role its own rows only.
 * dynbgw_restore() launches every definition of its database that is not
 * running, each as its owner, with the owner's authority as it is now.
 *
 * With the library in shared_preload_libraries, a worker started with the
 * server, and again after each crash-restart, runs dynbgw_restore() in
 * every database of dynbgw.restore_databases.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_restore);

PGDLLEXPORT void dynbgw_restore_launcher_main(Datum main_arg);
PGDLLEXPORT void dynbgw_restore_database_main(Datum main_arg);

char	   *dynbgw_restore_databases = NULL;

/*
 * An object of the extension, schema-qualified and quoted; the extension's
 * schema is that of the SQL function being called.
 */
static char *
dynbgw_qualified(FunctionCallInfo fcinfo, const char *name)
{
	Oid			schema = get_func_namespace(fcinfo->flinfo->fn_oid);

	return quote_qualified_identifier(get_namespace_name(schema), name);
}

/* dynbgw_launch's argument argno as a parameter of an SPI query. */
static void
dynbgw_arg_param(FunctionCallInfo fcinfo, int argno, Datum *value, char *null)
{
	*value = PG_ARGISNULL(argno) ? (Datum) 0 : PG_GETARG_DATUM(argno);
	*null = PG_ARGISNULL(argno) ? 'n' : ' ';
}

/*
 * Save worker n's definition, as given to dynbgw_launch (fcinfo) and as
 * resolved (def), replacing an earlier one of the same owner.  Another
 * role's definition of n is not replaced: row security makes that an
 * error.
 */
void
dynbgw_persist_save(FunctionCallInfo fcinfo, int n, const DynbgwDefinition *def)
{
	Oid			argtypes[10] = {INT4OID, TEXTOID, INTERVALOID, NAMEOID, NAMEOID,
	INT8OID, INTERVALOID, INTERVALOID, TEXTOID, TEXTOID};
	Datum		values[10];
	char		nulls[10];
	char	   *query;
	int			ret;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int32GetDatum(n);
	dynbgw_arg_param(fcinfo, 1, &values[1], &nulls[1]);	/* command */
	dynbgw_arg_param(fcinfo, 2, &values[2], &nulls[2]);	/* naptime */
	values[3] = DirectFunctionCall1(namein,
									CStringGetDatum(get_database_name(def->dboid)));
	values[4] = DirectFunctionCall1(namein,
									CStringGetDatum(GetUserNameFromId(def->roleoid, false)));
	dynbgw_arg_param(fcinfo, 5, &values[5], &nulls[5]);	/* runs */
	dynbgw_arg_param(fcinfo, 6, &values[6], &nulls[6]);	/* restart */
	dynbgw_arg_param(fcinfo, 9, &values[7], &nulls[7]);	/* run_timeout */
	values[8] = def->has_schedule ?
		CStringGetTextDatum(def->schedule_text) : (Datum) 0;
	nulls[8] = def->has_schedule ? ' ' : 'n';
	values[9] = def->has_schedule ?
		CStringGetTextDatum(def->timezone) : (Datum) 0;
	nulls[9] = def->has_schedule ? ' ' : 'n';

	query = psprintf("INSERT INTO %s AS d (n, command, naptime, database, role, runs, restart, run_timeout, schedule, timezone) "
					 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
					 "ON CONFLICT (n) DO UPDATE SET command = $2, naptime = $3, database = $4, role = $5, runs = $6, restart = $7, run_timeout = $8, schedule = $9, timezone = $10, owner = current_user, saved_at = now()",
					 dynbgw_qualified(fcinfo, "dynbgw_definitions"));
	SPI_connect();
	ret = SPI_execute_with_args(query, 10, argtypes, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not save the definition of dynbgw worker %d: %s",
			 n, SPI_result_code_string(ret));
	SPI_finish();
}

/* Delete worker n's saved definition, if the current role may see it. */
void
dynbgw_persist_forget(FunctionCallInfo fcinfo, int n)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(n)};

	SPI_connect();
	if (SPI_execute_with_args(psprintf("DELETE FROM %s WHERE n = $1",
									   dynbgw_qualified(fcinfo, "dynbgw_definitions")),
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget the definition of dynbgw worker %d", n);
	SPI_finish();
}

/*
 * dynbgw_restore() returns setof (n integer, pid integer, error text)
 *
 * Launch every saved definition of this database that row security lets
 * the current role see and that is not running, as if_running => 'skip'
 * would, each as its owner, so that the owner's authority as it is now
 * decides.  One row per definition: the PID, or the error that kept it
 * from launching.  One failure does not stop the others.
 */
Datum
dynbgw_restore(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callcontext = CurrentMemoryContext;
	ResourceOwner callowner = CurrentResourceOwner;
	Oid			saved_userid;
	int			saved_sec_context;
	char	   *launch;
	SPITupleTable *rows;
	uint64		count;

	InitMaterializedSRF(fcinfo, 0);
	launch = psprintf("SELECT %s(n => $1, command => $2, naptime => $3, database => $4, role => $5, runs => $6, restart => $7, run_timeout => $8, schedule => $9, timezone => $10, if_running => 'skip')",
					  dynbgw_qualified(fcinfo, "dynbgw_launch"));

	/* Read as the caller, row security deciding; launched as the owner. */
	SPI_connect();
	if (SPI_execute(psprintf("SELECT n, command, naptime, database, role, runs, restart, run_timeout, schedule, timezone, owner FROM %s ORDER BY n",
							 dynbgw_qualified(fcinfo, "dynbgw_definitions")),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the saved definitions");
	rows = SPI_tuptable;
	count = SPI_processed;
	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);

	for (uint64 i = 0; i < count; i++)
	{
		bool		isnull;
		int			n = DatumGetInt32(SPI_getbinval(rows->vals[i], rows->tupdesc,
													1, &isnull));
		char	   *owner = SPI_getvalue(rows->vals[i], rows->tupdesc, 11);
		Datum		values[3];
		bool		nulls[3] = {false, true, true};

		values[0] = Int32GetDatum(n);
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(callcontext);
		PG_TRY();
		{
			Oid			argtypes[10];
			Datum		args[10];
			char		argnulls[10];
			Datum		pid;

			for (int col = 0; col < 10; col++)
			{
				argtypes[col] = SPI_gettypeid(rows->tupdesc, col + 1);
				args[col] = SPI_getbinval(rows->vals[i], rows->tupdesc, col + 1,
										  &isnull);
				argnulls[col] = isnull ? 'n' : ' ';
			}

			/* As the owner: its authority, not the caller's, decides. */
			SetUserIdAndSecContext(get_role_oid(owner, false),
								   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
			if (SPI_execute_with_args(launch, 10, argtypes, args, argnulls,
									  false, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not launch dynbgw worker %d", n);
			pid = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								1, &nulls[1]);
			values[1] = pid;
			SetUserIdAndSecContext(saved_userid, saved_sec_context);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(callcontext);
			CurrentResourceOwner = callowner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			SetUserIdAndSecContext(saved_userid, saved_sec_context);
			MemoryContextSwitchTo(callcontext);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(callcontext);
			CurrentResourceOwner = callowner;
			values[2] = CStringGetTextDatum(edata->message);
			nulls[2] = false;
		}
		PG_END_TRY();
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * With the library preloaded: a worker that starts with the server (and
 * again after each crash-restart) and runs dynbgw_restore() in each of
 * dynbgw.restore_databases, one worker a database, then waits until the
 * server stops, so that the postmaster starts it again after a crash.
 */
void
dynbgw_restore_launcher_main(Datum main_arg)
{
	List	   *databases;
	ListCell   *lc;
	char	   *list;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	list = pstrdup(dynbgw_restore_databases ? dynbgw_restore_databases : "");
	if (!SplitIdentifierString(list, ',', &databases))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in \"dynbgw.restore_databases\"")));

	foreach(lc, databases)
	{
		BackgroundWorker worker;
		BackgroundWorkerHandle *handle;
		pid_t		pid;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
			BGWORKER_BACKEND_DATABASE_CONNECTION | BGWORKER_INTERRUPTIBLE;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		strlcpy(worker.bgw_library_name, "dynbgw", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "dynbgw_restore_database_main",
				BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "dynbgw restore %s",
				 (char *) lfirst(lc));
		strlcpy(worker.bgw_type, "dynbgw restore", BGW_MAXLEN);
		strlcpy(worker.bgw_extra, lfirst(lc), BGW_EXTRALEN);
		worker.bgw_notify_pid = MyProcPid;
		if (!RegisterDynamicBackgroundWorker(&worker, &handle) ||
			WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
		{
			ereport(LOG,
					(errmsg("could not start the dynbgw restore of database \"%s\"",
							(char *) lfirst(lc))));
			continue;
		}
		(void) WaitForBackgroundWorkerShutdown(handle);
	}

	for (;;)
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
}

/* Run dynbgw_restore() in one database, as the bootstrap superuser. */
void
dynbgw_restore_database_main(Datum main_arg)
{
	char		dbname[BGW_EXTRALEN];
	uint64		count;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	strlcpy(dbname, MyBgworkerEntry->bgw_extra, sizeof(dbname));
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "SELECT * FROM dynbgw_restore()");
	if (SPI_execute("SELECT extnamespace::pg_catalog.regnamespace::pg_catalog.text "
					"FROM pg_catalog.pg_extension WHERE extname = 'dynbgw'",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up the dynbgw extension");
	if (SPI_processed == 0)
	{
		ereport(LOG,
				(errmsg("dynbgw is not installed in database \"%s\"; nothing to restore",
						dbname)));
		count = 0;
	}
	else
	{
		char	   *schema = SPI_getvalue(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1);

		if (SPI_execute(psprintf("SELECT n, pid, error FROM %s.dynbgw_restore()",
								 schema), false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not restore dynbgw workers");
		count = SPI_processed;
	}
	for (uint64 i = 0; i < count; i++)
	{
		char	   *n = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		char	   *pid = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		char	   *error = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);

		if (error != NULL)
			ereport(LOG,
					(errmsg("dynbgw worker %s of database \"%s\" was not restored: %s",
							n, dbname, error)));
		else
			ereport(LOG,
					(errmsg("dynbgw worker %s of database \"%s\" restored, PID %s",
							n, dbname, pid ? pid : "none (waiting to restart)")));
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

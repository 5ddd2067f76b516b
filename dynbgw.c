/*-------------------------------------------------------------------------
 *
 * dynbgw.c
 *		The SQL interface of dynbgw: launch, find and stop workers.
 *
 * The SQL-callable functions that act on workers, and the checks of their
 * arguments; each reads like worker_spi_launch().  How a launch and a stop
 * go is dynbgw_launch_protocol.c's and dynbgw_stop_protocol.c's, and the
 * functions that report on workers are dynbgw_status.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "common/int.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "postmaster/postmaster.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(dynbgw_launch);
PG_FUNCTION_INFO_V1(dynbgw_launch_function);
PG_FUNCTION_INFO_V1(dynbgw_pid);
PG_FUNCTION_INFO_V1(dynbgw_stop);

/* Longest interval an argument may have: a year of naps is a mistake. */
#define DYNBGW_MAX_INTERVAL_US	((int64) 366 * USECS_PER_DAY)

void
_PG_init(void)
{
	DefineCustomIntVariable("dynbgw.max_workers",
							"Number of dynbgw workers that may exist at once.",
							"Workers are numbered from 1 to this value.  "
							"Read when the registry is created, at the first "
							"use after server start.",
							&dynbgw_max_workers,
							8, 1, DYNBGW_MAX_WORKERS_LIMIT,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dynbgw.history_size",
							"Number of runs that dynbgw_runs keeps.",
							"The last runs of all workers are kept in shared "
							"memory; 0 keeps none.  Read when the registry is "
							"created, at the first use after server start.",
							&dynbgw_history_size,
							1000, 0, DYNBGW_MAX_HISTORY,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dynbgw.reserved_worker_processes",
							"Background worker processes that workers launched by non-superusers leave free.",
							"Workers launched by non-superusers together take at "
							"most max_worker_processes minus this many, so that "
							"superusers, parallel query and replication keep "
							"room.",
							&dynbgw_reserved_worker_processes,
							2, 0, MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	/* Only the restore launcher reads it, and only a preload registers it. */
	DefineCustomStringVariable("dynbgw.restore_databases",
							   "Databases in which saved definitions are restored at every server start.",
							   "A comma-separated list.  Only when dynbgw is in "
							   "shared_preload_libraries.",
							   &dynbgw_restore_databases,
							   "",
							   process_shared_preload_libraries_in_progress ?
							   PGC_POSTMASTER : PGC_SIGHUP,
							   0,
							   dynbgw_check_restore_databases, NULL, NULL);
	DefineCustomIntVariable("dynbgw.max_result_size",
							"Largest result a dynbgw worker keeps.",
							"A run of a worker launched with keep_result whose "
							"result would be larger fails; 0 keeps none.",
							&dynbgw_max_result_size,
							1024, 0, MaxAllocSize / 1024,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dynbgw.max_total_result_size",
							"Shared memory that the results of all dynbgw workers take at most.",
							"A run whose result would make the total larger "
							"fails.",
							&dynbgw_max_total_result_size,
							64 * 1024, 0, MAX_KILOBYTES,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dynbgw.max_queued_tasks",
							"Tasks that the queues of all dynbgw pools hold at most.",
							"The queue sizes of all pools add up to at most "
							"this.",
							&dynbgw_max_queued_tasks,
							10000, 1, DYNBGW_MAX_QUEUED_TASKS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("dynbgw");

	if (process_shared_preload_libraries_in_progress)
		dynbgw_register_restore_launcher();
}

/* ---- argument checks ---- */

void
dynbgw_require(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/*
 * A worker number argument.  Numbers beyond the pool are a lack of
 * resources when launching, and plain bad input when looking one up.
 */
int
dynbgw_number_arg(FunctionCallInfo fcinfo, int argno, bool launching)
{
	DynbgwRegistry *reg = dynbgw_registry();
	int			n;

	dynbgw_require(fcinfo, argno, "worker number");
	n = PG_GETARG_INT32(argno);
	if (n > reg->capacity && launching)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("dynbgw worker number %d exceeds the pool size of %d",
						n, reg->capacity),
				 errhint("Raise \"dynbgw.max_workers\" and restart the server.")));
	if (n < 1 || n > reg->capacity)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dynbgw worker number %d is out of range", n),
				 errdetail("Worker numbers go from 1 to %d (\"dynbgw.max_workers\").",
						   reg->capacity)));
	return n;
}

/* An interval argument in microseconds, between 0 and a year. */
int64
dynbgw_interval_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	Interval   *iv;
	int64		days;
	int64		us;

	dynbgw_require(fcinfo, argno, name);
	iv = PG_GETARG_INTERVAL_P(argno);
	days = (int64) iv->month * DAYS_PER_MONTH + iv->day;
	if (days > DYNBGW_MAX_INTERVAL_US / USECS_PER_DAY + 1 ||
		days < -(DYNBGW_MAX_INTERVAL_US / USECS_PER_DAY + 1) ||
		pg_add_s64_overflow(days * USECS_PER_DAY, iv->time, &us) ||
		us < 0 || us > DYNBGW_MAX_INTERVAL_US)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 0 and 366 days", name)));
	return us;
}

/*
 * The database a worker connects to: the one named, or the current one.
 * Both the caller and the worker's role need CONNECT.  Checking here gives
 * a clear error before any process starts; the worker is held to the same
 * rules when it connects.
 */
Oid
dynbgw_database_arg(FunctionCallInfo fcinfo, int argno, Oid if_null,
					Oid roleoid)
{
	Oid			dboid;
	AclResult	aclresult;

	if (PG_ARGISNULL(argno))
		dboid = if_null;
	else
		dboid = get_database_oid(NameStr(*PG_GETARG_NAME(argno)), false);
	if (!OidIsValid(dboid))
		return dboid;

	aclresult = object_aclcheck(DatabaseRelationId, dboid, GetUserId(),
								ACL_CONNECT);
	if (aclresult == ACLCHECK_OK && roleoid != GetUserId())
		aclresult = object_aclcheck(DatabaseRelationId, dboid, roleoid,
									ACL_CONNECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_DATABASE, get_database_name(dboid));
	return dboid;
}

int
dynbgw_database_encoding(Oid dboid)
{
	HeapTuple	tuple;
	int			encoding;

	tuple = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for database %u", dboid);
	encoding = ((Form_pg_database) GETSTRUCT(tuple))->encoding;
	ReleaseSysCache(tuple);
	return encoding;
}

static void
dynbgw_command_error_callback(void *arg)
{
	int			pos = geterrposition();

	/* Point into the command, not into the query that passed it. */
	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery((const char *) arg);
	}
	errcontext("dynbgw command");
}

/*
 * Reject a command that cannot run, before a worker exists for it: one that
 * does not parse or breaks dynbgw's rules (dynbgw_command_check()).  The
 * worker checks again with its own lexer settings at every run.
 */
static void
dynbgw_check_command(const char *command)
{
	ErrorContextCallback errcallback;
	List	   *parsetrees;

	errcallback.callback = dynbgw_command_error_callback;
	errcallback.arg = unconstify(char *, command);
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	parsetrees = dynbgw_raw_parse(command);
	error_context_stack = errcallback.previous;

	dynbgw_command_check(parsetrees);
}

/* ---- launching ---- */

static DynbgwIfRunning
dynbgw_if_running_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *value;

	dynbgw_require(fcinfo, argno, "if_running");
	value = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (strcmp(value, "error") == 0)
		return DYNBGW_IF_RUNNING_ERROR;
	if (strcmp(value, "skip") == 0)
		return DYNBGW_IF_RUNNING_SKIP;
	if (strcmp(value, "replace") == 0)
		return DYNBGW_IF_RUNNING_REPLACE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for if_running: \"%s\"", value),
			 errhint("Valid values are \"error\", \"skip\" and \"replace\".")));
	pg_unreachable();
}

/*
 * The role a worker runs as: the current user, or one the caller may become
 * with SET ROLE.  Never a superuser for a caller who is not one.
 */
Oid
dynbgw_role_arg(FunctionCallInfo fcinfo, int argno)
{
	Oid			roleoid;
	const char *rolename;

	if (PG_ARGISNULL(argno))
		return GetUserId();
	rolename = NameStr(*PG_GETARG_NAME(argno));
	roleoid = get_role_oid(rolename, false);
	if (superuser())
		return roleoid;
	if (superuser_arg(roleoid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to launch a worker as role \"%s\"",
						rolename),
				 errdetail("Only superusers may launch workers that run as a superuser.")));
	if (!member_can_set_role(GetUserId(), roleoid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to launch a worker as role \"%s\"",
						rolename),
				 errdetail("Only roles that may SET ROLE to \"%s\" may launch workers as it.",
						   rolename)));
	return roleoid;
}

/* When runs are due: naptime (10 seconds unless given) or a schedule. */
static void
dynbgw_timing_args(FunctionCallInfo fcinfo, DynbgwDefinition *def)
{
	/* Version 1.0 of the SQL definition has no schedule and no timezone. */
	bool		has_schedule = PG_NARGS() > 10 && !PG_ARGISNULL(10);
	bool		has_timezone = PG_NARGS() > 11 && !PG_ARGISNULL(11);

	if (has_schedule && !PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a worker runs either every naptime or on a schedule, not both")));
	if (has_timezone && !has_schedule)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timezone is for a schedule"),
				 errhint("Give a schedule, or leave timezone NULL.")));
	if (has_schedule)
	{
		char	   *expr = text_to_cstring(PG_GETARG_TEXT_PP(10));
		pg_tz	   *tz;

		dynbgw_schedule_parse(expr, &def->schedule);
		tz = dynbgw_timezone_arg(fcinfo, 11, def->timezone);
		if (dynbgw_schedule_next(&def->schedule, tz,
								 GetCurrentTimestamp()) == DT_NOEND)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cron schedule \"%s\" is never due", expr),
					 errdetail("No time in the next %d years matches it.",
							   DYNBGW_SCHEDULE_HORIZON_YEARS)));
		def->has_schedule = true;
		strlcpy(def->schedule_text, expr, DYNBGW_MAX_SCHEDULE);
	}
	else if (PG_ARGISNULL(2))
	{
		def->naptime.time = 10 * USECS_PER_SEC;
		def->naptime_us = def->naptime.time;
	}
	else
	{
		def->naptime_us = dynbgw_interval_arg(fcinfo, 2, "naptime");
		def->naptime = *PG_GETARG_INTERVAL_P(2);
	}
}

/* How many runs, and the restart delay after a crash. */
static void
dynbgw_bounds_args(FunctionCallInfo fcinfo, DynbgwDefinition *def)
{
	if (!PG_ARGISNULL(5))
	{
		def->max_runs = PG_GETARG_INT64(5);
		if (def->max_runs < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("runs must be at least 1"),
					 errhint("Leave runs NULL to run forever.")));
	}
	def->restart_s = BGW_NEVER_RESTART;
	if (!PG_ARGISNULL(6))
	{
		/* The postmaster counts restart delays in whole seconds. */
		int64		restart_us = dynbgw_interval_arg(fcinfo, 6, "restart");

		if (restart_us < USECS_PER_SEC)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("restart must be at least 1 second"),
					 errhint("Leave restart NULL for a worker that is never restarted.")));
		def->restart_s = (int) ((restart_us + USECS_PER_SEC - 1) / USECS_PER_SEC);
	}
}

/* How long a run may take, in milliseconds; 0 (NULL): no limit. */
int
dynbgw_run_timeout_arg(FunctionCallInfo fcinfo, int argno)
{
	int64		run_timeout_us;

	/* Version 1.0 of dynbgw_launch has no run_timeout. */
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return 0;
	run_timeout_us = dynbgw_interval_arg(fcinfo, argno, "run_timeout");
	if (run_timeout_us < 1000 || run_timeout_us > 24 * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run_timeout must be between 1 millisecond and 24 days"),
				 errhint("Leave run_timeout NULL for runs without a time limit.")));
	return (int) (run_timeout_us / 1000);
}

/* How often, and after how long, a failed run is run again. */
static void
dynbgw_retry_args(FunctionCallInfo fcinfo, DynbgwDefinition *def)
{
	/* Before 1.2 the SQL definition has neither; NULL is the default. */
	def->retry_delay_us = USECS_PER_SEC;
	if (PG_NARGS() > 13 && !PG_ARGISNULL(13))
	{
		int32		retry = PG_GETARG_INT32(13);

		if (retry < 0 || retry > DYNBGW_MAX_RETRY)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("retry must be between 0 and %d", DYNBGW_MAX_RETRY)));
		def->retry = retry;
	}
	if (PG_NARGS() > 14 && !PG_ARGISNULL(14))
		def->retry_delay_us = dynbgw_interval_arg(fcinfo, 14, "retry_delay");
}

/* The command, checked and in the encoding of the worker's database. */
static void
dynbgw_command_arg(FunctionCallInfo fcinfo, DynbgwDefinition *def)
{
	char	   *command;

	if (PG_ARGISNULL(1))
	{
		if (def->naptime_us == 0 && !def->has_schedule)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("naptime must be greater than 0 for a worker without a command"),
					 errdetail("Such a worker only counts its wake-ups.")));
		if (def->retry > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("retry is for a worker with a command"),
					 errdetail("A worker without a command has no run that could fail.")));
		if (def->keep_result)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("keep_result is for a worker with a command"),
					 errdetail("A worker without a command has no rows to keep.")));
		return;
	}
	command = dynbgw_command_text(PG_GETARG_TEXT_PP(1), def->encoding);
	strlcpy(def->command, command, DYNBGW_MAX_COMMAND);
}

/*
 * A command argument, checked, in the encoding of the database that runs
 * it, where it must fit in DYNBGW_MAX_COMMAND.
 */
char *
dynbgw_command_text(text *arg, int encoding)
{
	char	   *command = text_to_cstring(arg);

	dynbgw_check_command(command);
	command = pg_server_to_any(command, strlen(command), encoding);
	if (strlen(command) >= DYNBGW_MAX_COMMAND)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("command is too long"),
				 errdetail("A command may have at most %d bytes.",
						   DYNBGW_MAX_COMMAND - 1),
				 errhint("Put the work in a procedure and CALL it.")));
	return command;
}

/*
 * dynbgw_launch(n, command, naptime, database, role, runs, restart,
 *				 if_running, wait_for_slot, run_timeout, schedule, timezone,
 *				 persist, retry, retry_delay, keep_result) returns integer
 *
 * Start dynbgw's own worker number n, running command every naptime, or on
 * a schedule, in database as role, and again after a failure while retries
 * are left, keeping the rows of each successful run if asked; without a
 * command it only counts its naps.
 */
Datum
dynbgw_launch(PG_FUNCTION_ARGS)
{
	int			n = dynbgw_number_arg(fcinfo, 0, true);
	DynbgwDefinition *def = palloc0(sizeof(DynbgwDefinition));
	DynbgwIfRunning if_running;
	int64		wait_for_slot_us;
	bool		persist;
	int			pid;

	def->kind = DYNBGW_KIND_SQL;
	dynbgw_timing_args(fcinfo, def);
	def->roleoid = dynbgw_role_arg(fcinfo, 4);
	def->dboid = dynbgw_database_arg(fcinfo, 3, MyDatabaseId, def->roleoid);
	dynbgw_authority_record(def, fcinfo->flinfo->fn_oid);
	def->encoding = dynbgw_database_encoding(def->dboid);
	dynbgw_bounds_args(fcinfo, def);
	if_running = dynbgw_if_running_arg(fcinfo, 7);
	wait_for_slot_us = dynbgw_interval_arg(fcinfo, 8, "wait_for_slot");
	def->run_timeout_ms = dynbgw_run_timeout_arg(fcinfo, 9);
	dynbgw_retry_args(fcinfo, def);
	/* Before 1.3 the SQL definition has no keep_result. */
	def->keep_result = PG_NARGS() > 15 && !PG_ARGISNULL(15) &&
		PG_GETARG_BOOL(15);
	dynbgw_command_arg(fcinfo, def);

	/* Version 1.0 of the SQL definition has no persist. */
	persist = PG_NARGS() > 12 && !PG_ARGISNULL(12) && PG_GETARG_BOOL(12);
	/* Another role's definition of n is an error before anything stops. */
	if (persist && if_running == DYNBGW_IF_RUNNING_REPLACE)
		dynbgw_persist_check(fcinfo, n);
	pid = dynbgw_launch_worker(n, def, if_running, wait_for_slot_us,
							   persist ? fcinfo : NULL);
	if (pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(pid);
}

static void
dynbgw_not_entry_point(const char *function, const char *library,
					   const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("function \"%s\" in library \"%s\" is not a background worker entry point",
					function, library),
			 errdetail_internal("%s", detail),
			 errhint("An entry point is declared as \"void name(Datum main_arg)\".")));
}

/*
 * dynbgw_launch_function(n, library, function, arg, database) returns integer
 *
 * Start a library's background worker entry point as worker number n.  It
 * loads arbitrary code into a server process, hence superuser only.  With a
 * database the worker is connected to it before the entry point is called.
 */
Datum
dynbgw_launch_function(PG_FUNCTION_ARGS)
{
	int			n;
	DynbgwDefinition *def;
	char	   *library;
	char	   *function;
	void	   *libhandle;
	bgworker_main_type entry;
	char	   *finfo_name;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to launch a library's worker entry point"),
				 errdetail("Only superusers may load code into a background worker.")));

	n = dynbgw_number_arg(fcinfo, 0, true);
	dynbgw_require(fcinfo, 1, "library");
	dynbgw_require(fcinfo, 2, "function");
	dynbgw_require(fcinfo, 3, "arg");
	library = text_to_cstring(PG_GETARG_TEXT_PP(1));
	function = text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (strlen(library) >= MAXPGPATH || strlen(function) >= BGW_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("library or function name is too long"),
				 errdetail("Library names may have up to %d bytes, function names up to %d.",
						   MAXPGPATH - 1, BGW_MAXLEN - 1)));

	/* What every library exports for the server's own use. */
	if (strcmp(function, "_PG_init") == 0 ||
		strcmp(function, "_PG_fini") == 0 ||
		strcmp(function, PG_MAGIC_FUNCTION_NAME_STRING) == 0 ||
		strncmp(function, "pg_finfo_", 9) == 0)
		dynbgw_not_entry_point(function, library, "The server calls it when it loads the library.");

	/* Fails with the usual errors for a missing library or function. */
	entry = DYNBGW_ENTRY_POINT(load_external_function(library, function,
													  true, &libhandle));
	finfo_name = psprintf("pg_finfo_%s", function);
	if (lookup_external_function(libhandle, finfo_name) != NULL)
		dynbgw_not_entry_point(function, library, "It is an SQL-callable function.");
	if (entry == dynbgw_worker_main ||
		entry == dynbgw_restore_launcher_main ||
		entry == dynbgw_restore_database_main)
		dynbgw_not_entry_point(function, library, "It is one of dynbgw's own processes.");

	def = palloc0(sizeof(DynbgwDefinition));
	def->kind = DYNBGW_KIND_FUNCTION;
	def->encoding = GetDatabaseEncoding();
	def->roleoid = GetUserId();
	dynbgw_authority_record(def, fcinfo->flinfo->fn_oid);
	def->restart_s = BGW_NEVER_RESTART;
	def->arg = PG_GETARG_INT64(3);
	def->dboid = dynbgw_database_arg(fcinfo, 4, InvalidOid, def->roleoid);
	strlcpy(def->library, library, MAXPGPATH);
	strlcpy(def->function, function, BGW_MAXLEN);

	PG_RETURN_INT32(dynbgw_launch_worker(n, def, DYNBGW_IF_RUNNING_ERROR, 0,
										 NULL));
}

/* ---- finding ---- */

/*
 * dynbgw_pid(n) returns integer
 *
 * The PID of worker n, or NULL if it has no process.
 */
Datum
dynbgw_pid(PG_FUNCTION_ARGS)
{
	DynbgwOccupant occupant;

	dynbgw_slot_look(dynbgw_number_arg(fcinfo, 0, false), &occupant);
	if (occupant.pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(occupant.pid);
}

/*
 * The worker with this PID, for dynbgw_stop(): its number, or 0 with a
 * notice if no worker has it.  Never a server process that is not ours.
 */
static int
dynbgw_worker_of_pid(int pid, DynbgwOccupant *occupant)
{
	bool		was_ours;
	int			n;

	if (pid <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("PID %d is not a valid process ID", pid)));
	n = dynbgw_slot_find_pid(pid, occupant, &was_ours);
	if (n != 0)
		return n;

	/* One of ours that just left the registry may linger in ProcArray. */
	if (!was_ours &&
		(pid == PostmasterPid || BackendPidGetProc(pid) != NULL ||
		 AuxiliaryPidGetProc(pid) != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("PID %d is not a dynbgw worker", pid),
				 errhint("dynbgw_stop() only stops workers listed in dynbgw_workers.")));
	ereport(NOTICE,
			(errmsg("no dynbgw worker with PID %d is running", pid)));
	return 0;
}

/*
 * dynbgw_stop(pid, timeout, n, forget) returns boolean
 *
 * Stop the dynbgw worker with this PID, or worker number n, and wait until
 * its process is gone.  By number it also cancels a pending restart, and
 * with forget removes n's saved definition, running or not.  False, with a
 * notice, when there is no such worker.
 */
Datum
dynbgw_stop(PG_FUNCTION_ARGS)
{
	int64		timeout_us = dynbgw_interval_arg(fcinfo, 1, "timeout");
	DynbgwOccupant occupant;
	int			n;

	/* Version 1.0 of the SQL definition has no forget. */
	bool		forget = PG_NARGS() > 3 && !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);

	if (!PG_ARGISNULL(2))
	{
		if (!PG_ARGISNULL(0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("give either a PID or a worker number, not both")));
		n = dynbgw_number_arg(fcinfo, 2, false);
		if (!dynbgw_slot_occupant(n, &occupant))
		{
			ereport(NOTICE,
					(errmsg("dynbgw worker %d is not running", n)));
			if (forget)
				dynbgw_persist_forget(fcinfo, n);
			PG_RETURN_BOOL(false);
		}
	}
	else if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	else if ((n = dynbgw_worker_of_pid(PG_GETARG_INT32(0), &occupant)) == 0)
		PG_RETURN_BOOL(false);

	dynbgw_check_may_signal(n, &occupant, "stop");
	if (!dynbgw_stop_slot(n, occupant.generation,
						  GetCurrentTimestamp() + timeout_us))
	{
		ereport(WARNING,
				(errmsg("dynbgw worker %d did not stop within the timeout", n)));
		PG_RETURN_BOOL(false);
	}
	if (forget)
		dynbgw_persist_forget(fcinfo, n);
	PG_RETURN_BOOL(true);
}

/*-------------------------------------------------------------------------
 *
 * dynbgw.c
 *		Launch, find and stop dynamic background workers from SQL.
 *
 * This file holds the SQL-callable functions: the checks of what the caller
 * asks for, launching, stopping and listing.  The registry of workers they
 * act on is dynbgw_registry.c's.  A launch
 * reserves the worker's number in the registry, registers a dynamic
 * background worker and waits until the worker reports that it is
 * connected and ready.  A stop works from any session: it signals the worker
 * named in the registry and waits until the worker has left it and the
 * process is gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

/* SQL-callable function support */
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

/* process and cleanup machinery */
#include "miscadmin.h"
#include "storage/ipc.h"

/* validating what the caller asks for */
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/int.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

/* waiting for workers */
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dynbgw.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(dynbgw_launch);
PG_FUNCTION_INFO_V1(dynbgw_launch_function);
PG_FUNCTION_INFO_V1(dynbgw_pid);
PG_FUNCTION_INFO_V1(dynbgw_stop);
PG_FUNCTION_INFO_V1(dynbgw_workers);
PG_FUNCTION_INFO_V1(dynbgw_wait);
PG_FUNCTION_INFO_V1(dynbgw_runs);

/* Longest interval an argument may have: a year of naps is a mistake. */
#define DYNBGW_MAX_INTERVAL_US	((int64) 366 * USECS_PER_DAY)



/* One launch in progress, for the cleanup that runs if it fails. */
typedef struct DynbgwLaunch
{
	int			n;
	uint64		generation;
	bool		saved;			/* its definition may be in a file */
	BackgroundWorkerHandle *handle;
} DynbgwLaunch;

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
	MarkGUCPrefixReserved("dynbgw");

	if (process_shared_preload_libraries_in_progress)
		dynbgw_register_restore_launcher();
}

/*
 * Text from the registry for this session.  It is in the encoding of the
 * database it came from: where that differs from ours, or the text is not
 * valid, non-ASCII bytes show as '?' rather than as invalid text.
 */
static char *
dynbgw_text_for_session(const char *str, int encoding)
{
	char	   *copy = pstrdup(str);

	if (encoding != GetDatabaseEncoding() ||
		!pg_verifymbstr(copy, strlen(copy), true))
	{
		for (char *p = copy; *p; p++)
		{
			if (IS_HIGHBIT_SET(*p))
				*p = '?';
		}
	}
	return copy;
}

/* ---- argument checks ---- */

static void
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
static int
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
static int64
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
static Oid
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

static int
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

typedef enum DynbgwIfRunning
{
	DYNBGW_IF_RUNNING_ERROR,
	DYNBGW_IF_RUNNING_SKIP,
	DYNBGW_IF_RUNNING_REPLACE
} DynbgwIfRunning;

/* How long if_running => 'replace' waits for the old worker to go. */
#define DYNBGW_REPLACE_TIMEOUT_MS	10000

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
static Oid
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

/*
 * Free or stop what a failed launch left behind.  Runs on error and on
 * process exit while the launcher waits, so neither a slot nor a worker
 * outlives a launch that did not return a PID.  A slot with no process is
 * freed here, whatever state it is in; a process that has the slot frees it
 * as it exits.
 */
static void
dynbgw_abandon_launch(int code, Datum arg)
{
	DynbgwLaunch *launch = (DynbgwLaunch *) DatumGetPointer(arg);
	DynbgwSlot *slot = &dynbgw_reg->slots[launch->n - 1];

	LWLockAcquire(&dynbgw_reg->lock, LW_EXCLUSIVE);
	if (slot->generation == launch->generation &&
		slot->launcher_latch == MyLatch)
	{
		slot->launcher_latch = NULL;
		slot->stop_requested = true;
		if (slot->pid == 0)
			dynbgw_slot_end(slot, DYNBGW_OUTCOME_FAILED);
		else
			slot->state = DYNBGW_STOPPING;
	}
	LWLockRelease(&dynbgw_reg->lock);
	ConditionVariableBroadcast(&slot->state_cv);

	/* The file is this launch's alone, and a failed launch needs none. */
	if (launch->saved)
		dynbgw_forget_worker(launch->n, launch->generation);

	/* Keeps the postmaster from starting it, or stops it if it runs. */
	if (launch->handle != NULL)
		TerminateBackgroundWorker(launch->handle);
}

/* Set just before the error that says a launch's worker was stopped. */
bool		dynbgw_launch_was_stopped = false;

static void
dynbgw_launch_stopped(int n)
{
	dynbgw_launch_was_stopped = true;
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("dynbgw worker %d was stopped before it was ready", n)));
}

/*
 * Register the worker with the postmaster.  When all background worker
 * slots are taken, retry until the deadline: nothing tells us when one is
 * freed, so poll at a modest rate.
 */
static void
dynbgw_register(DynbgwLaunch *launch, int restart_s, TimestampTz deadline)
{
	DynbgwSlot *slot = &dynbgw_reg->slots[launch->n - 1];
	BackgroundWorker worker;
	DynbgwWorkerArgs args;

	dynbgw_worker_template(&worker, "dynbgw_worker_main", restart_s);
	snprintf(worker.bgw_name, BGW_MAXLEN, "dynbgw worker %d", launch->n);
	strlcpy(worker.bgw_type, "dynbgw", BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(launch->n);
	worker.bgw_notify_pid = MyProcPid;
	args.n = launch->n;
	args.generation = launch->generation;
	memcpy(worker.bgw_extra, &args, sizeof(args));

	while (!RegisterDynamicBackgroundWorker(&worker, &launch->handle))
	{
		long		remaining_ms;
		bool		stopped;

		LWLockAcquire(&dynbgw_reg->lock, LW_SHARED);
		stopped = slot->stop_requested;
		LWLockRelease(&dynbgw_reg->lock);
		if (stopped)
			dynbgw_launch_stopped(launch->n);

		remaining_ms = dynbgw_ms_until(deadline);
		if (remaining_ms <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not register dynbgw worker %d", launch->n),
					 errdetail("All background worker slots are in use."),
					 errhint("Stop a worker, wait for one with wait_for_slot, or raise \"max_worker_processes\" and restart the server.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(remaining_ms, 10L),
						 dynbgw_wait_event(DYNBGW_WAIT_LAUNCH));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	LWLockAcquire(&dynbgw_reg->lock, LW_EXCLUSIVE);
	memcpy(&slot->bgw_handle, launch->handle, sizeof(DynbgwHandle));
	slot->have_handle = true;
	LWLockRelease(&dynbgw_reg->lock);
}

/*
 * Whether process pid waits for a lock that this session holds.
 */
static bool
dynbgw_blocked_by_us(int pid)
{
	Datum		blockers = DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(pid));
	Datum	   *pids;
	int			count;

	deconstruct_array(DatumGetArrayTypeP(blockers), INT4OID, sizeof(int32),
					  true, TYPALIGN_INT, &pids, NULL, &count);
	for (int i = 0; i < count; i++)
	{
		if (DatumGetInt32(pids[i]) == MyProcPid)
			return true;
	}
	return false;
}

/*
 * Wait until the worker is connected and ready, and return its PID.  The
 * worker sets our latch when it is ready or exits, and so does the
 * postmaster when the process stops, also one that never ran our code.
 * While a launcher waits, only it frees the slot (stoppers and the worker
 * leave that to it), so the slot cannot pass to another launch meanwhile.
 * A worker that waits for a lock of ours would wait for ever: every
 * deadlock_timeout, look whether that is so.
 */
static int
dynbgw_wait_until_ready(DynbgwLaunch *launch)
{
	DynbgwSlot *slot = &dynbgw_reg->slots[launch->n - 1];

	for (;;)
	{
		BgwHandleStatus status;
		pid_t		bgpid = 0;
		int			ready_pid;
		bool		stopped;
		bool		exited;
		bool		restart;
		int			error_code;
		int			error_encoding;
		char		error[DYNBGW_MAX_ERROR];
		int			rc;

		/* Ask first: once it reports the process stopped, the slot is final. */
		status = GetBackgroundWorkerPid(launch->handle, &bgpid);

		LWLockAcquire(&dynbgw_reg->lock, LW_EXCLUSIVE);
		if (slot->generation != launch->generation)
		{
			LWLockRelease(&dynbgw_reg->lock);
			dynbgw_launch_stopped(launch->n);
		}
		ready_pid = slot->ready_pid;
		stopped = slot->stop_requested;
		exited = slot->state == DYNBGW_EXITED;

		/* Once ready, what happens to it is no longer the launch's doing. */
		if (ready_pid != 0 && !exited)
		{
			slot->launcher_latch = NULL;
			LWLockRelease(&dynbgw_reg->lock);
			return ready_pid;
		}
		if (exited || (slot->pid == 0 && (status == BGWH_STOPPED || stopped)))
		{
			/*
			 * A worker that was ready and is already gone did start, and
			 * restarts if it wanted to.  Its exit kept its registration
			 * exactly when it wanted a restart (dynbgw_worker_exit()), and
			 * only a stop ends it otherwise.  Not the status: once the
			 * postmaster has reaped the process, GetBackgroundWorkerPid()
			 * says BGWH_STOPPED for a registration that waits for its
			 * restart too, so a launcher that woke up after the reaping
			 * ended a worker that was to restart.
			 */
			restart = ready_pid != 0 && slot->restart_after_exit && !stopped;
			if (restart)
				slot->state = DYNBGW_RESTARTING;
			else
				dynbgw_slot_end(slot,
								dynbgw_outcome_of(slot, ready_pid == 0 ||
												  slot->exit_failed));
			error_code = slot->error_code;
			error_encoding = slot->error_encoding;
			strlcpy(error, slot->last_error, sizeof(error));
			slot->launcher_latch = NULL;
			LWLockRelease(&dynbgw_reg->lock);
			ConditionVariableBroadcast(&slot->state_cv);

			if (ready_pid != 0)
			{
				if (!restart)
				{
					TerminateBackgroundWorker(launch->handle);
					if (launch->saved)
						dynbgw_forget_worker(launch->n, launch->generation);
				}
				return ready_pid;
			}
			if (stopped)
				dynbgw_launch_stopped(launch->n);
			if (error[0] != '\0')
				ereport(ERROR,
						(errcode(error_code),
						 errmsg("dynbgw worker %d failed to start", launch->n),
						 errdetail_internal("%s",
											dynbgw_text_for_session(error, error_encoding))));
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("dynbgw worker %d exited before it was ready",
							launch->n),
					 errhint("The server log may say why.")));
		}
		LWLockRelease(&dynbgw_reg->lock);

		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   Max(DeadlockTimeout, 1),
					   dynbgw_wait_event(DYNBGW_WAIT_LAUNCH));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if ((rc & WL_TIMEOUT) && status == BGWH_STARTED &&
			dynbgw_blocked_by_us(bgpid))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
					 errmsg("dynbgw worker %d cannot start: it waits for a lock held by this session",
							launch->n),
					 errdetail("Process %d, the worker, needs the lock to connect to its database as its role.",
							   (int) bgpid),
					 errhint("Launch the worker outside the transaction that holds the lock.")));
	}
}

/* ---- stopping ---- */

/*
 * The same rules as pg_terminate_backend: superuser workers only by
 * superusers, others by members of their role or of pg_signal_backend.
 * The role that launched a worker may also stop it, even when it has since
 * lost the role, or the role was dropped.
 */
static void
dynbgw_check_may_stop(int n, Oid roleoid, Oid launcher_roleoid)
{
	if (superuser())
		return;
	if (superuser_arg(roleoid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to stop dynbgw worker %d", n),
				 errdetail("Only superusers may stop a worker that runs as a superuser.")));
	if (!has_privs_of_role(GetUserId(), roleoid) &&
		!has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND) &&
		GetUserId() != launcher_roleoid)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to stop dynbgw worker %d", n),
				 errdetail("Only the role that launched it and roles with the privileges of its role or of \"pg_signal_backend\" may stop it.")));
}

/*
 * Wait until worker n's slot has moved on from what we saw, or the deadline
 * passes: until the worker with this PID is gone (with PID 0, until the
 * launch that has not started it yet is given up), or, with launch_decided,
 * until the launch in progress has succeeded or failed.
 */
static bool
dynbgw_wait_slot(DynbgwSlot *slot, uint64 generation, int pid,
				 bool launch_decided, TimestampTz deadline)
{
	bool		moved_on = false;

	ConditionVariablePrepareToSleep(&slot->state_cv);
	for (;;)
	{
		long		remaining_ms;

		LWLockAcquire(&dynbgw_reg->lock, LW_SHARED);
		if (slot->generation != generation)
			moved_on = true;
		else if (launch_decided)
			moved_on = slot->state != DYNBGW_STARTING &&
				slot->state != DYNBGW_EXITED;
		else if (pid != 0)
			moved_on = slot->pid != pid;
		else
			moved_on = slot->state == DYNBGW_FREE;
		LWLockRelease(&dynbgw_reg->lock);
		if (moved_on)
			break;

		remaining_ms = dynbgw_ms_until(deadline);
		if (remaining_ms <= 0 ||
			ConditionVariableTimedSleep(&slot->state_cv, remaining_ms,
										dynbgw_wait_event(launch_decided ?
														  DYNBGW_WAIT_LAUNCH :
														  DYNBGW_WAIT_STOP)))
			break;
	}
	ConditionVariableCancelSleep();
	return moved_on;
}

/*
 * Stop the worker in slot n, if it is still the given generation, and wait
 * until it is gone.  False if it did not go before the deadline.  The
 * postmaster's registration is ended too, so that nothing restarts it.  A
 * worker waiting to be restarted is simply forgotten; a launch still in
 * progress is left for its launcher to give up.
 */
static bool
dynbgw_stop_slot(int n, uint64 generation, TimestampTz deadline)
{
	DynbgwSlot *slot = &dynbgw_reg->slots[n - 1];
	DynbgwState state;
	DynbgwHandle handle;
	bool		have_handle;
	Latch	   *launcher_latch;
	int			pid;
	pid_t		ignored_pid;
	int			kill_errno = 0;

	LWLockAcquire(&dynbgw_reg->lock, LW_EXCLUSIVE);
	if (slot->generation != generation || slot->state == DYNBGW_FREE)
	{
		LWLockRelease(&dynbgw_reg->lock);
		return true;
	}
	state = slot->state;
	pid = slot->pid;
	handle = slot->bgw_handle;
	have_handle = slot->have_handle;
	launcher_latch = slot->launcher_latch;
	slot->stop_requested = true;

	/* No launcher waits for a worker to restart (see dynbgw_worker_exit). */
	if (state == DYNBGW_RESTARTING)
		dynbgw_slot_end(slot, DYNBGW_OUTCOME_STOPPED);

	/*
	 * Signal only while holding the lock: the worker cannot leave the
	 * registry meanwhile, so its PID cannot have been reused.
	 */
	else if (pid != 0)
	{
		slot->state = DYNBGW_STOPPING;
		if (kill(pid, SIGTERM) != 0)
			kill_errno = errno;
	}
	LWLockRelease(&dynbgw_reg->lock);

	if (kill_errno != 0)
	{
		errno = kill_errno;
		elog(WARNING, "could not send signal to process %d: %m", pid);
	}
	if (state == DYNBGW_RESTARTING)
		dynbgw_forget_worker(n, generation);

	/*
	 * Free its background worker slot now rather than when a restart would
	 * be due, and keep a worker not yet started from starting.  Without a
	 * handle (a crash-restart dropped it, or the launcher has not stored it
	 * yet) a process that starts anyway finds its slot gone and exits.
	 */
	if (have_handle)
		TerminateBackgroundWorker((BackgroundWorkerHandle *) &handle);
	ConditionVariableBroadcast(&slot->state_cv);
	if (launcher_latch)
		SetLatch(launcher_latch);

	/* Gone already: the launcher still waiting now knows it was stopped. */
	if (state == DYNBGW_RESTARTING || state == DYNBGW_EXITED)
		return true;
	if (!dynbgw_wait_slot(slot, generation, pid, false, deadline))
		return false;

	/*
	 * The worker left the registry on its way out; only the rest of its
	 * exit and the postmaster's reaping, which frees the background worker
	 * slot for the next launch, remain.  That takes microseconds.  Watched
	 * through the registration, which a reused PID cannot fake; a worker
	 * brought back by a crash-restart has a handle once it is ready.
	 */
	if (!have_handle)
	{
		LWLockAcquire(&dynbgw_reg->lock, LW_SHARED);
		if (slot->generation == generation && slot->have_handle)
		{
			handle = slot->bgw_handle;
			have_handle = true;
		}
		LWLockRelease(&dynbgw_reg->lock);
	}
	while (have_handle ?
		   GetBackgroundWorkerPid((BackgroundWorkerHandle *) &handle,
								  &ignored_pid) != BGWH_STOPPED :
		   pid != 0 && kill(pid, 0) == 0)
	{
		if (GetCurrentTimestamp() >= deadline)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1L, dynbgw_wait_event(DYNBGW_WAIT_STOP));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/*
 * Reserve worker number n for the definition, start the worker and return
 * its PID once it is ready.  On any error nothing stays behind.
 */
static int
dynbgw_start(int n, const DynbgwDefinition *def, DynbgwIfRunning if_running,
			 int64 wait_for_slot_us, FunctionCallInfo persist)
{
	DynbgwSlot *slot = &dynbgw_reg->slots[n - 1];
	DynbgwLaunch launch;
	DynbgwLimits limits;
	TimestampTz slot_deadline = GetCurrentTimestamp() + wait_for_slot_us;
	int			pid;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot launch dynbgw workers during recovery"),
				 errhint("Launch workers on the primary.")));

	for (;;)
	{
		uint64		generation;
		DynbgwState state;
		Oid			roleoid;
		Oid			launcher_roleoid;
		DynbgwLimit exceeded;

		/* Counted anew at each try: sessions come and go, settings change. */
		dynbgw_limits_prepare(&limits, def);
		LWLockAcquire(&dynbgw_reg->lock, LW_EXCLUSIVE);
		if (slot->state == DYNBGW_FREE)
		{
			exceeded = dynbgw_limits_exceeded(&limits, 0);
			if (exceeded == DYNBGW_LIMIT_NONE)
				break;			/* keep the lock */
			LWLockRelease(&dynbgw_reg->lock);

			/* Like a background worker slot, room in the headroom comes. */
			if (exceeded != DYNBGW_LIMIT_HEADROOM ||
				GetCurrentTimestamp() >= slot_deadline)
				dynbgw_limit_error(&limits, exceeded);
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 10L, dynbgw_wait_event(DYNBGW_WAIT_LAUNCH));
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		generation = slot->generation;
		state = slot->state;
		pid = slot->pid;
		roleoid = slot->def.roleoid;
		launcher_roleoid = slot->def.launcher_roleoid;
		LWLockRelease(&dynbgw_reg->lock);

		if (if_running == DYNBGW_IF_RUNNING_ERROR)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("dynbgw worker %d is already running", n),
					 pid != 0 ?
					 errdetail("Its PID is %d.", pid) :
					 errdetail("Its state is \"%s\".", dynbgw_state_name(state)),
					 errhint("Stop it first, choose another number, or use if_running => 'skip' or 'replace'.")));

		/*
		 * A launch or a stop in progress elsewhere finishes before we decide,
		 * within the time a replace gives a worker to stop.
		 */
		if (state == DYNBGW_STARTING || state == DYNBGW_EXITED ||
			state == DYNBGW_STOPPING)
		{
			if (!dynbgw_wait_slot(slot, generation, pid,
								  state != DYNBGW_STOPPING,
								  TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  DYNBGW_REPLACE_TIMEOUT_MS)))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_IN_USE),
						 errmsg("dynbgw worker %d is still \"%s\"", n,
								dynbgw_state_name(state)),
						 errdetail("It did not leave that state within %d seconds.",
								   DYNBGW_REPLACE_TIMEOUT_MS / 1000),
						 errhint("Try again later, or stop it with dynbgw_stop(n => %d).", n)));
			continue;
		}
		if (if_running == DYNBGW_IF_RUNNING_SKIP)
		{
			if (pid != 0)
				return pid;
			/* waiting to be restarted: no PID to give */
			return 0;
		}

		dynbgw_check_may_stop(n, roleoid, launcher_roleoid);
		if (!dynbgw_stop_slot(n, generation,
							  TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  DYNBGW_REPLACE_TIMEOUT_MS)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("could not replace dynbgw worker %d", n),
					 errdetail("Its PID %d did not stop within %d seconds.",
							   pid, DYNBGW_REPLACE_TIMEOUT_MS / 1000)));
	}

	slot->generation = ++dynbgw_reg->last_generation;
	slot->def = *def;
	slot->launched_at = GetCurrentTimestamp();
	slot->launched_by_pid = MyProcPid;
	slot->state = DYNBGW_STARTING;
	slot->pid = 0;
	slot->ready_pid = 0;
	slot->stop_requested = false;
	slot->restart_after_exit = false;
	slot->exit_failed = false;
	slot->failed_starts = 0;
	slot->have_handle = false;
	slot->launcher_latch = MyLatch;
	slot->runs = 0;
	slot->failures = 0;
	slot->last_started = 0;
	slot->last_finished = 0;
	slot->last_duration_us = 0;
	slot->next_run = 0;
	slot->error_code = 0;
	slot->last_error[0] = '\0';
	slot->last_run_failed = false;
	slot->last_result[0] = '\0';
	launch.n = n;
	launch.generation = slot->generation;
	launch.saved = false;
	launch.handle = NULL;
	LWLockRelease(&dynbgw_reg->lock);

	PG_ENSURE_ERROR_CLEANUP(dynbgw_abandon_launch, PointerGetDatum(&launch));
	{
		/* Saved once the number is ours, so that a skip saves nothing. */
		if (persist != NULL)
			dynbgw_persist_save(persist, n, def);
		dynbgw_register(&launch, def->restart_s, slot_deadline);
		pid = dynbgw_wait_until_ready(&launch);

		/*
		 * Only a launch that succeeds leaves a file for a crash-restart to
		 * bring its worker back from: a worker restarted without one exits.
		 */
		if (def->restart_s != BGW_NEVER_RESTART)
		{
			DynbgwSlot *copy = palloc(sizeof(DynbgwSlot));
			bool		ours;

			/* Read under the lock: a stop or replace may be under way. */
			LWLockAcquire(&dynbgw_reg->lock, LW_SHARED);
			ours = slot->generation == launch.generation;
			if (ours)
				memcpy(copy, slot, sizeof(DynbgwSlot));
			LWLockRelease(&dynbgw_reg->lock);
			if (ours)
			{
				launch.saved = true;
				dynbgw_save_worker(n, copy);
			}
		}
	}
	PG_END_ENSURE_ERROR_CLEANUP(dynbgw_abandon_launch, PointerGetDatum(&launch));

	return pid;
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

/*
 * dynbgw_launch(n, command, naptime, database, role, runs, restart,
 *				 if_running, wait_for_slot) returns integer
 *
 * Start dynbgw's own worker number n, running command every naptime in
 * database as role; without a command it only counts its naps.
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
	if_running = dynbgw_if_running_arg(fcinfo, 7);
	wait_for_slot_us = dynbgw_interval_arg(fcinfo, 8, "wait_for_slot");
	/* Version 1.0 of the SQL definition has no run_timeout. */
	if (PG_NARGS() > 9 && !PG_ARGISNULL(9))
	{
		int64		run_timeout_us = dynbgw_interval_arg(fcinfo, 9, "run_timeout");

		if (run_timeout_us < 1000 || run_timeout_us > 24 * USECS_PER_DAY)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("run_timeout must be between 1 millisecond and 24 days"),
					 errhint("Leave run_timeout NULL for runs without a time limit.")));
		def->run_timeout_ms = (int) (run_timeout_us / 1000);
	}
	if (!PG_ARGISNULL(1))
	{
		char	   *command = text_to_cstring(PG_GETARG_TEXT_PP(1));

		dynbgw_check_command(command);
		/* The worker runs it in its own database's encoding. */
		command = pg_server_to_any(command, strlen(command), def->encoding);
		if (strlen(command) >= DYNBGW_MAX_COMMAND)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("command is too long"),
					 errdetail("A command may have at most %d bytes.",
							   DYNBGW_MAX_COMMAND - 1),
					 errhint("Put the work in a procedure and CALL it.")));
		strlcpy(def->command, command, DYNBGW_MAX_COMMAND);
	}
	else if (def->naptime_us == 0 && !def->has_schedule)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("naptime must be greater than 0 for a worker without a command"),
				 errdetail("Such a worker only counts its wake-ups.")));

	/* Version 1.0 of the SQL definition has no persist. */
	persist = PG_NARGS() > 12 && !PG_ARGISNULL(12) && PG_GETARG_BOOL(12);
	/* Another role's definition of n is an error before anything stops. */
	if (persist && if_running == DYNBGW_IF_RUNNING_REPLACE)
		dynbgw_persist_check(fcinfo, n);
	pid = dynbgw_start(n, def, if_running, wait_for_slot_us,
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

	PG_RETURN_INT32(dynbgw_start(n, def, DYNBGW_IF_RUNNING_ERROR, 0, NULL));
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
	int			n = dynbgw_number_arg(fcinfo, 0, false);
	DynbgwSlot *slot = &dynbgw_reg->slots[n - 1];
	int			pid;

	LWLockAcquire(&dynbgw_reg->lock, LW_SHARED);
	pid = slot->pid;
	LWLockRelease(&dynbgw_reg->lock);

	if (pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(pid);
}

/*
 * dynbgw_stop(pid, timeout, n) returns boolean
 *
 * Stop the dynbgw worker with this PID, or worker number n, and wait until
 * its process is gone.  By number it also cancels a pending restart.  False,
 * with a notice, when there is no such worker.
 */
Datum
dynbgw_stop(PG_FUNCTION_ARGS)
{
	int64		timeout_us = dynbgw_interval_arg(fcinfo, 1, "timeout");
	DynbgwRegistry *reg = dynbgw_registry();
	int			pid = 0;
	int			n = 0;
	bool		was_ours = false;
	uint64		generation = 0;
	Oid			roleoid = InvalidOid;
	Oid			launcher_roleoid = InvalidOid;

	/* Version 1.0 of the SQL definition has no forget. */
	bool		forget = PG_NARGS() > 3 && !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);

	if (!PG_ARGISNULL(2))
	{
		if (!PG_ARGISNULL(0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("give either a PID or a worker number, not both")));
		n = dynbgw_number_arg(fcinfo, 2, false);
		LWLockAcquire(&reg->lock, LW_SHARED);
		if (dynbgw_state_name(reg->slots[n - 1].state) != NULL)
		{
			generation = reg->slots[n - 1].generation;
			roleoid = reg->slots[n - 1].def.roleoid;
			launcher_roleoid = reg->slots[n - 1].def.launcher_roleoid;
		}
		LWLockRelease(&reg->lock);
		if (generation == 0)
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
	else
	{
		pid = PG_GETARG_INT32(0);
		if (pid <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("PID %d is not a valid process ID", pid)));

		LWLockAcquire(&reg->lock, LW_SHARED);
		for (int i = 0; i < reg->capacity; i++)
		{
			if (reg->slots[i].pid == pid)
			{
				n = i + 1;
				generation = reg->slots[i].generation;
				roleoid = reg->slots[i].def.roleoid;
				launcher_roleoid = reg->slots[i].def.launcher_roleoid;
			}
			else if (reg->slots[i].last_pid == pid)
				was_ours = true;
		}
		LWLockRelease(&reg->lock);

		if (n == 0)
		{
			/*
			 * Never signal a server process that is not ours.  One of ours
			 * that just left the registry may linger in ProcArray a moment.
			 */
			if (!was_ours &&
				(pid == PostmasterPid || BackendPidGetProc(pid) != NULL ||
				 AuxiliaryPidGetProc(pid) != NULL))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("PID %d is not a dynbgw worker", pid),
						 errhint("dynbgw_stop() only stops workers listed in dynbgw_workers.")));
			ereport(NOTICE,
					(errmsg("no dynbgw worker with PID %d is running", pid)));
			PG_RETURN_BOOL(false);
		}
	}

	/* Catalog lookups happen without the lock held. */
	dynbgw_check_may_stop(n, roleoid, launcher_roleoid);

	if (!dynbgw_stop_slot(n, generation,
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

/* ---- listing ---- */

#define DYNBGW_WORKERS_COLS 22
#define DYNBGW_WAIT_COLS	9
#define DYNBGW_RUNS_COLS	12
#define DYNBGW_RUNS_CHUNK	1024	/* runs copied in one hold of the lock */

/*
 * Whether the current user may see all of what a worker of this role
 * does: as in pg_stat_activity, with its role's privileges or those of
 * pg_read_all_stats.
 */
static bool
dynbgw_may_see(Oid roleoid)
{
	return has_privs_of_role(GetUserId(), roleoid) ||
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/* Text of the registry for a result column: NULL when empty. */
static void
dynbgw_text_column(Datum *value, bool *isnull, const char *str, int encoding)
{
	*isnull = str[0] == '\0';
	if (!*isnull)
		*value = CStringGetTextDatum(dynbgw_text_for_session(str, encoding));
}

static Datum
dynbgw_name_datum(const char *str)
{
	Name		name;

	if (str == NULL)
		return (Datum) 0;
	name = palloc0(NAMEDATALEN);
	namestrcpy(name, str);
	return NameGetDatum(name);
}

static Datum
dynbgw_interval_datum(int64 us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = us;
	return IntervalPGetDatum(iv);
}

/*
 * dynbgw_workers() returns setof record
 *
 * One row per worker that exists.  As in pg_stat_activity, a worker of a
 * role whose privileges the viewer does not have is shown only by number,
 * PID, kind, database and role, unless the viewer has pg_read_all_stats.
 */
Datum
dynbgw_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwRegistry *reg = dynbgw_registry();
	DynbgwSlot *copy = palloc(sizeof(DynbgwSlot));

	InitMaterializedSRF(fcinfo, 0);

	for (int i = 0; i < reg->capacity; i++)
	{
		DynbgwSlot *slot = &reg->slots[i];
		Datum		values[DYNBGW_WORKERS_COLS];
		bool		nulls[DYNBGW_WORKERS_COLS];
		const char *state;
		char	   *dbname;
		char	   *rolename;

		/* Copy under the lock, look names up after releasing it. */
		LWLockAcquire(&reg->lock, LW_SHARED);
		state = dynbgw_state_name(slot->state);
		if (state != NULL)
			memcpy(copy, slot, offsetof(DynbgwSlot, state_cv));
		LWLockRelease(&reg->lock);
		if (state == NULL)
			continue;

		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(i + 1);
		values[1] = Int32GetDatum(copy->pid);
		nulls[1] = (copy->pid == 0);
		values[2] = CStringGetTextDatum(copy->def.kind == DYNBGW_KIND_SQL ?
										"sql" : "function");
		dbname = OidIsValid(copy->def.dboid) ?
			get_database_name(copy->def.dboid) : NULL;
		values[4] = dynbgw_name_datum(dbname);
		nulls[4] = (dbname == NULL);
		rolename = GetUserNameFromId(copy->def.roleoid, true);
		values[5] = dynbgw_name_datum(rolename);
		nulls[5] = (rolename == NULL);

		/* What pg_stat_activity shows of others' sessions, and no more. */
		if (!dynbgw_may_see(copy->def.roleoid))
		{
			nulls[3] = true;
			for (int col = 6; col < DYNBGW_WORKERS_COLS; col++)
				nulls[col] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
								 values, nulls);
			continue;
		}

		values[3] = CStringGetTextDatum(state);
		if (copy->def.kind == DYNBGW_KIND_FUNCTION)
			values[6] = CStringGetTextDatum(psprintf("%s.%s",
													 copy->def.library,
													 copy->def.function));
		else if (copy->def.command[0] != '\0')
			values[6] = CStringGetTextDatum(dynbgw_text_for_session(copy->def.command,
																	copy->def.encoding));
		else
			nulls[6] = true;
		dynbgw_text_column(&values[10], &nulls[10], copy->last_error,
						   copy->error_encoding);
		values[7] = IntervalPGetDatum(&copy->def.naptime);
		nulls[7] = (copy->def.kind != DYNBGW_KIND_SQL || copy->def.has_schedule);
		values[8] = Int64GetDatum(copy->runs);
		values[9] = Int64GetDatum(copy->failures);
		values[11] = TimestampTzGetDatum(copy->launched_at);
		values[12] = Int32GetDatum(copy->launched_by_pid);
		values[13] = TimestampTzGetDatum(copy->last_started);
		nulls[13] = (copy->last_started == 0);
		values[14] = TimestampTzGetDatum(copy->last_finished);
		nulls[14] = (copy->last_finished == 0);
		values[15] = dynbgw_interval_datum(copy->last_duration_us);
		nulls[15] = (copy->last_finished == 0);
		values[16] = TimestampTzGetDatum(copy->next_run);
		nulls[16] = (copy->next_run == 0);
		values[17] = Int64GetDatum(copy->def.max_runs);
		nulls[17] = (copy->def.max_runs == 0);
		values[18] = dynbgw_interval_datum((int64) copy->def.restart_s * USECS_PER_SEC);
		nulls[18] = (copy->def.restart_s == BGW_NEVER_RESTART);
		/* Command tags are ASCII. */
		dynbgw_text_column(&values[19], &nulls[19], copy->last_result,
						   PG_SQL_ASCII);
		dynbgw_text_column(&values[20], &nulls[20], copy->def.schedule_text,
						   copy->def.encoding);
		dynbgw_text_column(&values[21], &nulls[21], copy->def.timezone,
						   PG_SQL_ASCII);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---- outcomes ---- */

static const char *const dynbgw_outcome_names[] = {
	[DYNBGW_OUTCOME_NONE] = "running",
	[DYNBGW_OUTCOME_SUCCEEDED] = "succeeded",
	[DYNBGW_OUTCOME_FAILED] = "failed",
	[DYNBGW_OUTCOME_STOPPED] = "stopped"
};

static const char *const dynbgw_run_status_names[] = {
	[DYNBGW_RUN_SUCCEEDED] = "succeeded",
	[DYNBGW_RUN_FAILED] = "failed",
	[DYNBGW_RUN_CANCELLED] = "cancelled",
	[DYNBGW_RUN_STOPPED] = "stopped"
};

/*
 * dynbgw_wait(n, timeout) returns setof dynbgw_outcome
 *
 * Wait until the launch of worker n that exists now has ended, or for at
 * most timeout (NULL: for ever, 0: just look), and say how it ended, or
 * that it is still running.  Without a worker, say how the last launch of
 * n ended; no row if none ended since the server started.  The wait sleeps
 * on the slot's condition variable, which every end of a launch broadcasts.
 */
Datum
dynbgw_wait(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n = dynbgw_number_arg(fcinfo, 0, false);
	DynbgwSlot *slot = &dynbgw_reg->slots[n - 1];
	TimestampTz deadline = DT_NOEND;
	uint64		waited = 0;
	bool		lost = false;
	DynbgwEnding state;
	Datum		values[DYNBGW_WAIT_COLS];
	bool		nulls[DYNBGW_WAIT_COLS];

	if (!PG_ARGISNULL(1))
		deadline = GetCurrentTimestamp() +
			dynbgw_interval_arg(fcinfo, 1, "timeout");
	InitMaterializedSRF(fcinfo, 0);

	ConditionVariablePrepareToSleep(&slot->state_cv);
	for (;;)
	{
		bool		ended;
		long		remaining_ms;

		LWLockAcquire(&dynbgw_reg->lock, LW_SHARED);
		if (slot->state != DYNBGW_FREE && waited == 0)
			waited = slot->generation;
		ended = slot->state == DYNBGW_FREE ||
			(slot->ended.generation >= waited && slot->ended.generation != 0);
		if (ended && waited != 0 && slot->ended.generation != waited &&
			slot->ended_before.generation != waited)
			lost = true;
		else if (ended)
			state = waited != 0 && slot->ended_before.generation == waited ?
				slot->ended_before : slot->ended;
		else
		{
			/* Still running: how far it got. */
			state.generation = slot->generation;
			state.outcome = DYNBGW_OUTCOME_NONE;
			/* Between two processes of a restart, the last one. */
			state.pid = slot->pid != 0 ? slot->pid : slot->last_pid;
			state.roleoid = slot->def.roleoid;
			state.runs = slot->runs;
			state.failures = slot->failures;
			state.ended_at = 0;
			state.error_code = slot->error_code;
			state.error_encoding = slot->error_encoding;
			strlcpy(state.error, slot->last_error, sizeof(state.error));
			strlcpy(state.result, slot->last_result, sizeof(state.result));
		}
		LWLockRelease(&dynbgw_reg->lock);

		remaining_ms = dynbgw_ms_until(deadline);
		if (ended || remaining_ms <= 0)
			break;
		(void) ConditionVariableTimedSleep(&slot->state_cv, remaining_ms,
										   dynbgw_wait_event(DYNBGW_WAIT_END));
	}
	ConditionVariableCancelSleep();

	if (lost)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("how the launch of dynbgw worker %d that was waited for ended is no longer known", n),
				 errdetail("Two later launches of it ended before the wait could look.")));
	if (state.generation == 0)
		return (Datum) 0;

	memset(nulls, true, sizeof(nulls));
	values[0] = Int32GetDatum(n);
	nulls[0] = false;
	values[1] = Int32GetDatum(state.pid);
	nulls[1] = state.pid == 0;
	if (dynbgw_may_see(state.roleoid))
	{
		values[2] = CStringGetTextDatum(dynbgw_outcome_names[state.outcome]);
		nulls[2] = false;
		values[3] = Int64GetDatum(state.runs);
		nulls[3] = false;
		values[4] = Int64GetDatum(state.failures);
		nulls[4] = false;
		if (state.error_code != 0)
		{
			values[5] = CStringGetTextDatum(unpack_sql_state(state.error_code));
			nulls[5] = false;
		}
		dynbgw_text_column(&values[6], &nulls[6], state.error,
						   state.error_encoding);
		dynbgw_text_column(&values[7], &nulls[7], state.result, PG_SQL_ASCII);
		values[8] = TimestampTzGetDatum(state.ended_at);
		nulls[8] = state.ended_at == 0;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/* One run as a row of dynbgw_runs, with the visibility of dynbgw_workers. */
static void
dynbgw_put_run(ReturnSetInfo *rsinfo, const DynbgwRun *run)
{
	Datum		values[DYNBGW_RUNS_COLS];
	bool		nulls[DYNBGW_RUNS_COLS];
	char	   *rolename = GetUserNameFromId(run->roleoid, true);
	char	   *dbname = get_database_name(run->dboid);

	memset(nulls, true, sizeof(nulls));
	values[0] = Int32GetDatum(run->n);
	values[1] = Int64GetDatum((int64) run->launch);
	values[2] = Int32GetDatum(run->pid);
	nulls[0] = nulls[1] = nulls[2] = false;
	values[3] = dynbgw_name_datum(rolename);
	nulls[3] = rolename == NULL;
	values[4] = dynbgw_name_datum(dbname);
	nulls[4] = dbname == NULL;
	if (dynbgw_may_see(run->roleoid))
	{
		values[5] = TimestampTzGetDatum(run->started);
		values[6] = TimestampTzGetDatum(run->finished);
		values[7] = dynbgw_interval_datum(run->finished - run->started);
		values[8] = CStringGetTextDatum(dynbgw_run_status_names[run->status]);
		nulls[5] = nulls[6] = nulls[7] = nulls[8] = false;
		if (run->error_code != 0)
		{
			values[9] = CStringGetTextDatum(unpack_sql_state(run->error_code));
			nulls[9] = false;
		}
		dynbgw_text_column(&values[10], &nulls[10], run->message,
						   run->encoding);
		dynbgw_text_column(&values[11], &nulls[11], run->result,
						   PG_SQL_ASCII);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * dynbgw_runs() returns setof record
 *
 * The last dynbgw.history_size runs of all workers, oldest first, with the
 * same visibility as dynbgw_workers.
 */
Datum
dynbgw_runs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwRegistry *reg = dynbgw_registry();
	DynbgwRun  *chunk;
	MemoryContext rowcontext;
	uint64		first;
	int			count;

	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(&reg->lock, LW_SHARED);
	count = (int) Min(reg->runs_recorded, (uint64) reg->history_size);
	first = reg->runs_recorded - count;
	LWLockRelease(&reg->lock);

	/*
	 * The ring oldest first, a chunk at a time: copied in one hold of the
	 * lock, so that a large history does not keep the workers from their
	 * bookkeeping, then turned into rows, which the tuplestore keeps within
	 * work_mem.  So a call takes the same memory whatever
	 * dynbgw.history_size is.  A run overwritten meanwhile is left out.
	 */
	chunk = palloc(sizeof(DynbgwRun) * DYNBGW_RUNS_CHUNK);
	rowcontext = AllocSetContextCreate(CurrentMemoryContext, "dynbgw_runs row",
									   ALLOCSET_SMALL_SIZES);
	for (int start = 0; start < count; start += DYNBGW_RUNS_CHUNK)
	{
		int			copied = 0;

		LWLockAcquire(&reg->lock, LW_SHARED);
		for (int i = start; i < Min(count, start + DYNBGW_RUNS_CHUNK); i++)
		{
			if (reg->runs_recorded - (first + i) > (uint64) reg->history_size)
				continue;
			chunk[copied++] = dynbgw_history(reg)[(first + i) % reg->history_size];
		}
		LWLockRelease(&reg->lock);

		for (int i = 0; i < copied; i++)
		{
			MemoryContext oldcontext = MemoryContextSwitchTo(rowcontext);

			dynbgw_put_run(rsinfo, &chunk[i]);
			MemoryContextSwitchTo(oldcontext);
			MemoryContextReset(rowcontext);
		}
	}
	return (Datum) 0;
}

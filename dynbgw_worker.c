/*-------------------------------------------------------------------------
 *
 * dynbgw_worker.c
 *		The life of a dynbgw worker process.
 *
 * A worker claims its slot in the registry, connects to its database as
 * its role, tells its launcher that it is ready, and then either runs its
 * SQL command on a fixed-rate schedule or calls a library's entry point.
 * SIGTERM means "stop": a run in progress is cancelled and rolled back and
 * the process exits with status 0, so the postmaster never restarts it.
 * Whatever way it exits, it leaves the registry on its way out.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* process, signal and latch machinery */
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"

/* running the command */
#include "access/xact.h"
#include "pgstat.h"
#include "parser/analyze.h"
#include "tcop/pquery.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

PGDLLEXPORT void dynbgw_sleep_main(Datum main_arg);

/* This worker's slot in the registry, once claimed. */
static DynbgwSlot *my_slot = NULL;
static uint64 my_generation;
static int	my_number;
static int64 my_runs;			/* runs done, counting those before a restart */

static volatile sig_atomic_t stop_requested = false;

/*
 * Cancels (SIGINT, statement_timeout) and stops (SIGTERM) interrupt a run
 * only: between runs there is nothing to cancel, and an error raised there
 * would end the process with a status that makes the postmaster restart it.
 */
static volatile sig_atomic_t in_run = false;

/*
 * Until it is ready, a worker may wait for its role and database, on locks
 * other sessions hold; a stop must end that wait, so then SIGTERM ends the
 * process the usual way.
 */
static volatile sig_atomic_t ready = false;

/* The last error this process reported, for a launcher still waiting. */
static int	last_error_code;
static char last_error[DYNBGW_MAX_ERROR];
static emit_log_hook_type prev_emit_log_hook = NULL;

/* Cancel the run in progress, if any.  Called from signal handlers. */
static void
dynbgw_cancel_run(void)
{
	if (in_run)
	{
		InterruptPending = true;
		QueryCancelPending = true;
	}
	SetLatch(MyLatch);
}

static void
dynbgw_sigint(SIGNAL_ARGS)
{
	int			save_errno = errno;

	dynbgw_cancel_run();
	errno = save_errno;
}

static void
dynbgw_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	stop_requested = true;
	if (!ready)
	{
		InterruptPending = true;
		ProcDiePending = true;
	}
	dynbgw_cancel_run();
	errno = save_errno;
}

static void
dynbgw_remember_error(ErrorData *edata)
{
	if (edata->elevel >= ERROR && edata->message != NULL)
	{
		last_error_code = edata->sqlerrcode;
		strlcpy(last_error, edata->message, sizeof(last_error));
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Leave the registry.  A before_shmem_exit callback, because the registry's
 * segment is unmapped before on_shmem_exit callbacks run; the stopper waits
 * for the rest of the exit by watching the PID.  A worker that dies with a
 * restart delay keeps its slot for the postmaster's restart of it.
 */
static void
dynbgw_worker_exit(int code, Datum arg)
{
	DynbgwRegistry *reg;
	Latch	   *launcher_latch = NULL;
	bool		restartable;
	bool		forget = false;

	if (my_slot == NULL)
		return;
	reg = dynbgw_registry();

	LWLockAcquire(&reg->lock, LW_EXCLUSIVE);
	if (my_slot->generation == my_generation && my_slot->pid == MyProcPid)
	{
		restartable = my_slot->def.restart_s != BGW_NEVER_RESTART;
		/* A launcher still waiting reports why; a run cut short counts. */
		if (last_error[0] != '\0' &&
			(my_slot->ready_pid == 0 || my_slot->state == DYNBGW_RUNNING))
		{
			dynbgw_set_error(my_slot, last_error_code, last_error);
		}
		if (my_slot->state == DYNBGW_RUNNING && code != 0)
		{
			my_slot->runs++;
			my_slot->failures++;
		}
		my_slot->pid = 0;
		my_slot->last_pid = MyProcPid;
		my_slot->next_run = 0;
		launcher_latch = my_slot->launcher_latch;
		if (restartable && code != 0 && !my_slot->stop_requested)
			my_slot->state = DYNBGW_RESTARTING;
		else if (launcher_latch)
			my_slot->state = DYNBGW_EXITED;
		else
		{
			my_slot->state = DYNBGW_FREE;
			forget = restartable;
		}
	}
	LWLockRelease(&reg->lock);

	if (forget)
		dynbgw_forget_worker(my_number);
	ConditionVariableBroadcast(&my_slot->state_cv);
	if (launcher_latch)
		SetLatch(launcher_latch);
}

/*
 * Take the slot the launcher reserved for us, or the one we held before the
 * postmaster restarted us, and copy our definition.  After a crash-restart
 * the registry is new and empty: a restartable worker then takes its slot
 * back from its saved definition.  NULL if there is nothing for us to do:
 * the launch was abandoned, or we were stopped or replaced meanwhile.
 */
static DynbgwDefinition *
dynbgw_claim(const DynbgwWorkerArgs *args)
{
	DynbgwRegistry *reg = dynbgw_registry();
	DynbgwSlot *slot;
	DynbgwDefinition *def = NULL;
	DynbgwSavedWorker *saved;
	bool		have_saved;

	if (args->n < 1 || args->n > reg->capacity)
		return NULL;
	slot = &reg->slots[args->n - 1];

	/* Only a slot lost to a crash-restart is worth reading the file for. */
	saved = palloc(sizeof(DynbgwSavedWorker));
	LWLockAcquire(&reg->lock, LW_SHARED);
	have_saved = slot->state == DYNBGW_FREE &&
		slot->generation < args->generation;
	LWLockRelease(&reg->lock);
	if (have_saved)
		have_saved = dynbgw_load_worker(args->n, args->generation, saved);

	before_shmem_exit(dynbgw_worker_exit, (Datum) 0);

	LWLockAcquire(&reg->lock, LW_EXCLUSIVE);
	if (slot->state == DYNBGW_FREE && have_saved &&
		slot->generation < args->generation)
	{
		slot->generation = args->generation;
		slot->def = saved->def;
		slot->launched_at = saved->launched_at;
		slot->launched_by_pid = saved->launched_by_pid;
		slot->state = DYNBGW_RESTARTING;
		slot->stop_requested = false;
		slot->have_handle = false;
		slot->launcher_latch = NULL;
		slot->runs = slot->failures = 0;
		slot->last_started = slot->last_finished = slot->next_run = 0;
		slot->last_duration_us = 0;
		slot->last_error[0] = '\0';
		reg->last_generation = Max(reg->last_generation, args->generation);
	}
	if (slot->generation == args->generation &&
		(slot->state == DYNBGW_STARTING || slot->state == DYNBGW_RESTARTING) &&
		slot->pid == 0 && !slot->stop_requested)
	{
		slot->pid = MyProcPid;
		slot->ready_pid = 0;
		slot->state = DYNBGW_STARTING;
		my_slot = slot;
		my_generation = args->generation;
		my_number = args->n;
		my_runs = slot->runs;
		def = MemoryContextAlloc(TopMemoryContext, sizeof(DynbgwDefinition));
		memcpy(def, &slot->def, sizeof(DynbgwDefinition));
	}
	LWLockRelease(&reg->lock);
	pfree(saved);
	return def;
}

/*
 * Tell the launcher we are ready, unless we were told to stop already, and
 * say when the first run is due.
 */
static void
dynbgw_report_ready(DynbgwState state, TimestampTz next_run)
{
	DynbgwRegistry *reg = dynbgw_registry();
	Latch	   *launcher_latch;
	bool		stop;

	LWLockAcquire(&reg->lock, LW_EXCLUSIVE);
	stop = my_slot->stop_requested;
	if (!stop)
	{
		my_slot->state = state;
		my_slot->ready_pid = MyProcPid;
		my_slot->next_run = next_run;
		ready = true;
	}
	launcher_latch = my_slot->launcher_latch;
	LWLockRelease(&reg->lock);

	ConditionVariableBroadcast(&my_slot->state_cv);
	if (launcher_latch)
		SetLatch(launcher_latch);
	if (stop)
		proc_exit(0);
}

static void
dynbgw_report_run_start(TimestampTz started)
{
	DynbgwRegistry *reg = dynbgw_registry();

	LWLockAcquire(&reg->lock, LW_EXCLUSIVE);
	if (!my_slot->stop_requested)
		my_slot->state = DYNBGW_RUNNING;
	my_slot->last_started = started;
	my_slot->next_run = 0;
	LWLockRelease(&reg->lock);
}

/* Record the end of a run and when the next one is due, in one go. */
static void
dynbgw_report_run_end(TimestampTz started, TimestampTz finished,
					  TimestampTz next_run, ErrorData *edata)
{
	DynbgwRegistry *reg = dynbgw_registry();

	LWLockAcquire(&reg->lock, LW_EXCLUSIVE);
	if (!my_slot->stop_requested)
		my_slot->state = DYNBGW_IDLE;
	my_slot->runs++;
	my_slot->last_finished = finished;
	my_slot->last_duration_us = finished - started;
	my_slot->next_run = next_run;
	if (edata != NULL)
	{
		my_slot->failures++;
		dynbgw_set_error(my_slot, edata->sqlerrcode, edata->message);
	}
	LWLockRelease(&reg->lock);
}

/*
 * Run the command once, in a transaction of its own, the way a simple query
 * from a client runs: each statement through a portal, so that a CALLed
 * procedure may commit and utility statements such as VACUUM work alone.
 * Results are discarded.
 */
static void
dynbgw_run_command(const char *command)
{
	MemoryContext run_context = CurrentMemoryContext;
	List	   *parsetrees;
	ListCell   *lc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* Parse trees must outlive a commit inside the run. */
	MemoryContextSwitchTo(run_context);
	pgstat_report_activity(STATE_RUNNING, command);
	if (StatementTimeout > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);

	parsetrees = pg_parse_query(command);
	foreach(lc, parsetrees)
	{
		RawStmt    *parsetree = lfirst_node(RawStmt, lc);
		bool		snapshot_set = false;
		List	   *querytrees;
		List	   *plantrees;
		Portal		portal;
		DestReceiver *receiver;
		QueryCompletion qc;

		if (analyze_requires_snapshot(parsetree))
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			snapshot_set = true;
		}
		querytrees = pg_analyze_and_rewrite_fixedparams(parsetree, command,
														NULL, 0, NULL);
		plantrees = pg_plan_queries(querytrees, command,
									CURSOR_OPT_PARALLEL_OK, NULL);
		if (snapshot_set)
			PopActiveSnapshot();

		portal = CreatePortal("", true, true);
		portal->visible = false;
		PortalDefineQuery(portal, NULL, command,
						  CreateCommandTag(parsetree->stmt), plantrees, NULL);
		PortalStart(portal, NULL, 0, InvalidSnapshot);
		receiver = CreateDestReceiver(DestNone);
		(void) PortalRun(portal, FETCH_ALL, list_length(parsetrees) == 1,
						 receiver, receiver, &qc);
		receiver->rDestroy(receiver);
		PortalDrop(portal, false);
		CommandCounterIncrement();
	}

	disable_timeout(STATEMENT_TIMEOUT, false);
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Run k is due at origin + k * naptime: a fixed rate that does not drift.  A
 * run that overran its slot is followed at once by one more, and the starts
 * it missed are skipped.  Returns the k of the next run after one that
 * finished at "now".
 */
static int64
dynbgw_next_k(const DynbgwDefinition *def, TimestampTz origin, int64 k,
			  TimestampTz now)
{
	k++;
	if (def->naptime_us > 0)
		k = Max(k, (now - origin) / def->naptime_us);
	return k;
}

/*
 * One run: the command if there is one, else just a counted wake-up.
 * Returns the k of the next run.
 */
static int64
dynbgw_run(const DynbgwDefinition *def, MemoryContext run_context,
		   TimestampTz origin, int64 k)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(run_context);
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz finished;
	int64		next_k;
	ErrorData  *edata = NULL;

	dynbgw_report_run_start(started);
	if (def->command[0] != '\0')
	{
		in_run = true;
		PG_TRY();
		{
			dynbgw_run_command(def->command);
		}
		PG_CATCH();
		{
			in_run = false;
			QueryCancelPending = false;
			MemoryContextSwitchTo(run_context);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			disable_timeout(STATEMENT_TIMEOUT, false);
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		PG_END_TRY();
		in_run = false;
		/* a cancel that came too late to cancel anything */
		QueryCancelPending = false;
	}

	if (edata != NULL && !stop_requested)
		ereport(LOG,
				(errmsg("dynbgw worker %d: command failed with SQLSTATE %s",
						my_number, unpack_sql_state(edata->sqlerrcode)),
				 errdetail_internal("%s", edata->message)));
	finished = GetCurrentTimestamp();
	next_k = dynbgw_next_k(def, origin, k, finished);
	dynbgw_report_run_end(started, finished,
						  origin + next_k * def->naptime_us, edata);
	my_runs++;

	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(run_context);
	return next_k;
}

/*
 * Sleep until the given time or a stop request.  The latch wait sleeps in
 * whole milliseconds; the last fraction is slept out so that runs start on
 * time.
 */
static void
dynbgw_sleep_until(TimestampTz wake_at)
{
	for (;;)
	{
		int64		remaining_us;

		if (stop_requested)
			return;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		remaining_us = wake_at - GetCurrentTimestamp();
		if (remaining_us <= 0)
			return;
		if (remaining_us < 1000)
			pg_usleep(remaining_us);
		else
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(remaining_us / 1000, 3600 * 1000L),
							 dynbgw_wait_event(DYNBGW_WAIT_NAP));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Run the command on its schedule (see dynbgw_next_k) from the moment the
 * worker is ready.  An idle worker's first run is its first wake-up.
 */
static void
dynbgw_sql_loop(const DynbgwDefinition *def)
{
	MemoryContext run_context;
	TimestampTz origin = GetCurrentTimestamp();
	int64		k = def->command[0] != '\0' ? 0 : 1;

	run_context = AllocSetContextCreate(TopMemoryContext, "dynbgw run",
										ALLOCSET_DEFAULT_SIZES);
	pgstat_report_activity(STATE_IDLE, NULL);
	dynbgw_report_ready(DYNBGW_IDLE, origin + k * def->naptime_us);

	for (;;)
	{
		dynbgw_sleep_until(origin + k * def->naptime_us);
		if (stop_requested)
			break;

		k = dynbgw_run(def, run_context, origin, k);
		if (stop_requested)
			break;
		if (def->max_runs > 0 && my_runs >= def->max_runs)
		{
			ereport(LOG,
					(errmsg("dynbgw worker %d finished its %lld runs",
							my_number, (long long) def->max_runs)));
			proc_exit(0);
		}
	}
	ereport(LOG, (errmsg("dynbgw worker %d stopped", my_number)));
}

static void
dynbgw_call_entry_point(const DynbgwDefinition *def)
{
	bgworker_main_type entry;

	entry = DYNBGW_ENTRY_POINT(load_external_function(def->library,
													  def->function,
													  true, NULL));
	/* The entry point sees its argument where it would if registered. */
	MyBgworkerEntry->bgw_main_arg = Int64GetDatum(def->arg);
	dynbgw_report_ready(DYNBGW_RUNNING, 0);
	entry(Int64GetDatum(def->arg));
}

void
dynbgw_worker_main(Datum main_arg)
{
	DynbgwWorkerArgs args;
	DynbgwDefinition *def;
	char		name[BGW_MAXLEN];

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGINT, dynbgw_sigint);
	pqsignal(SIGTERM, dynbgw_sigterm);
	BackgroundWorkerUnblockSignals();
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = dynbgw_remember_error;

	def = dynbgw_claim(&args);
	if (def == NULL)
		proc_exit(0);

	if (def->kind == DYNBGW_KIND_FUNCTION)
	{
		/* Foreign code expects the usual signal handling. */
		pqsignal(SIGINT, StatementCancelHandler);
		pqsignal(SIGTERM, die);
		if (stop_requested)
			proc_exit(0);
	}

	/* Only a connected worker has a session to name. */
	if (OidIsValid(def->dboid))
	{
		BackgroundWorkerInitializeConnectionByOid(def->dboid, def->roleoid,
												  DYNBGW_CONNECT_FLAGS);
		snprintf(name, sizeof(name), "dynbgw worker %d", my_number);
		SetConfigOption("application_name", name, PGC_USERSET, PGC_S_SESSION);
	}

	if (def->kind == DYNBGW_KIND_FUNCTION)
	{
		dynbgw_call_entry_point(def);
		return;
	}

	dynbgw_sql_loop(def);
}

/*
 * A minimal entry point for dynbgw_launch_function(): it waits on its latch
 * until terminated, or for main_arg milliseconds if that is positive.  Used
 * by the tests and to measure the cost of a bare worker.
 */
void
dynbgw_sleep_main(Datum main_arg)
{
	int64		timeout_ms = DatumGetInt64(main_arg);
	TimestampTz until = GetCurrentTimestamp() + timeout_ms * 1000;

	for (;;)
	{
		long		wait_ms = 3600 * 1000L;

		if (timeout_ms > 0)
		{
			wait_ms = dynbgw_ms_until(until);
			if (wait_ms <= 0)
				break;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, dynbgw_wait_event(DYNBGW_WAIT_NAP));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*-------------------------------------------------------------------------
 *
 * dynbgw_worker.c
 *		The life of a dynbgw worker process.
 *
 * A worker claims its slot in the registry, connects to its database as
 * its role, tells its launcher that it is ready, and then either runs its
 * SQL command on a fixed-rate schedule or calls a library's entry point.
 * SIGTERM means "stop", from anyone and at any time: as for a backend it
 * terminates the process at the next interrupt check, which no exception
 * handler in the command can catch, and a stopped worker is never
 * restarted.  Whatever way it exits, it leaves the registry on its way out.
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
#include "libpq/pqsignal.h"
#include "tcop/tcopprot.h"

/* the schedule and its runs */
#include "access/xact.h"
#include "common/int.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

PGDLLEXPORT void dynbgw_sleep_main(Datum main_arg);

/* This worker's launch, and whether it has claimed its slot. */
static bool have_slot = false;
static uint64 my_generation;
static int	my_number;
static int64 my_runs;			/* runs done, counting those before a restart */

/* Set by SIGTERM: this process is to stop, whoever asked. */
static volatile sig_atomic_t stop_requested = false;

/*
 * A cancel (SIGINT) interrupts a run only: between runs there is nothing to
 * cancel, and an error raised there would end the process.
 */
static volatile sig_atomic_t in_run = false;

/* Why the current run was cancelled: pg_cancel_backend, or run_timeout. */
static volatile sig_atomic_t cancel_requested = false;
static volatile sig_atomic_t run_timed_out = false;
static TimeoutId run_timeout_id;

/* Wakes the worker when its next run is due; see dynbgw_sleep_until(). */
static TimeoutId wake_timeout_id;

/* The pool of this worker (0: none), and whether it has joined it. */
static uint64 my_pool_id = 0;
static bool in_pool = false;

/* Whether this process completed a run; see DYNBGW_MAX_FAILED_STARTS. */
static bool completed_run = false;

/* The last error this process reported, for a launcher still waiting. */
static int	last_error_code;
static char last_error[DYNBGW_MAX_ERROR];
static emit_log_hook_type prev_emit_log_hook = NULL;

/* Failure lines are logged at most once a second; the rest are counted. */
#define DYNBGW_FAILURE_LOG_INTERVAL_MS	1000
static TimestampTz last_failure_logged = 0;
static int64 failures_not_logged = 0;

static void
dynbgw_sigint(SIGNAL_ARGS)
{
	int			save_errno = errno;

	if (in_run)
	{
		/* statement_timeout and lock_timeout signal a cancel too. */
		/* The last interrupt decides, whatever the run caught before. */
		cancel_requested = !get_timeout_indicator(STATEMENT_TIMEOUT, false) &&
			!get_timeout_indicator(LOCK_TIMEOUT, false);
		InterruptPending = true;
		QueryCancelPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * A run that takes longer than run_timeout is cancelled as a statement is
 * at statement_timeout; like that, a command may catch it.
 */
static void
dynbgw_run_timeout_handler(void)
{
	run_timed_out = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/* The timeout module sets the latch for every timeout: nothing more to do. */
static void
dynbgw_wake_handler(void)
{
}

/*
 * A termination request, as die() makes it for a backend: the next
 * CHECK_FOR_INTERRUPTS() raises FATAL, which a command cannot catch.
 * Between runs the schedule loop sees the flag first and exits quietly.
 */
static void
dynbgw_sigterm(SIGNAL_ARGS)
{
	stop_requested = true;
	dynbgw_forward_signal(die);
}

/*
 * The launcher reports why a worker could not start, so until the worker is
 * ready every error must reach this hook, whatever log_min_messages says:
 * it is lowered to ERROR meanwhile, and what the setting would have kept
 * out of the log is kept out here.
 */
static int	log_min_messages_wanted = -1;	/* -1: not lowered */

static void
dynbgw_remember_error(ErrorData *edata)
{
	if (edata->elevel >= ERROR && edata->message != NULL)
	{
		last_error_code = edata->sqlerrcode;
		strlcpy(last_error, edata->message, sizeof(last_error));
	}
	if (log_min_messages_wanted >= 0 && edata->elevel < log_min_messages_wanted)
		edata->output_to_server = false;
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

static void
dynbgw_catch_startup_errors(bool catching)
{
	if (catching && dynbgw_log_min_messages > ERROR)
	{
		log_min_messages_wanted = dynbgw_log_min_messages;
		dynbgw_log_min_messages = ERROR;
	}
	else if (!catching && log_min_messages_wanted >= 0)
	{
		/* Unless a setting of the role or database came meanwhile. */
		if (dynbgw_log_min_messages == ERROR)
			dynbgw_log_min_messages = log_min_messages_wanted;
		log_min_messages_wanted = -1;
	}
}

/*
 * Find this process's registration with the postmaster when the registry
 * has no copy of it: after a crash-restart, which renumbers registrations.
 * The postmaster gives each registration that survived the crash
 * generation 0 (BackgroundWorkerShmemInit()), and a registration made
 * since has a higher one; the one whose process is ours is ours.
 */
static bool
dynbgw_find_own_handle(DynbgwHandle *handle)
{
	for (int i = 0; i < max_worker_processes; i++)
	{
		pid_t		pid;

		handle->slot = i;
		handle->generation = 0;
		if (GetBackgroundWorkerPid((BackgroundWorkerHandle *) handle,
								   &pid) == BGWH_STARTED && pid == MyProcPid)
			return true;
	}
	return false;
}

/*
 * Once a pool's worker has left the registry: if it was the pool's last,
 * none waiting to be restarted, the pool's tasks would wait for ever, so
 * the pool fails, as when its workers lose their authority.  A drop has
 * ended the tasks already.
 */
static void
dynbgw_pool_check_left(void)
{
	int			capacity = dynbgw_registry()->capacity;
	int		   *numbers = palloc(capacity * sizeof(int));
	uint64	   *generations = palloc(capacity * sizeof(uint64));
	ErrorData	gone;

	if (dynbgw_slot_pool_workers(my_pool_id, numbers, generations) > 0)
		return;
	memset(&gone, 0, sizeof(gone));
	gone.sqlerrcode = ERRCODE_ADMIN_SHUTDOWN;
	gone.message = "all the workers of its pool were stopped or have given up";
	dynbgw_pool_close(my_pool_id, &gone);
}

/*
 * Leave the registry (dynbgw_slot_exit()).  A before_shmem_exit callback,
 * because the registry's segment is unmapped before on_shmem_exit callbacks
 * run; the stopper waits for the rest of the exit by watching the
 * registration.
 */
static void
dynbgw_worker_exit(int code, Datum arg)
{
	DynbgwExit	report;
	DynbgwAfter after;

	if (!have_slot)
		return;

	/* An error or FATAL may have come with the registry lock held. */
	LWLockReleaseAll();
	/* A stop may have come after a result was staged. */
	dynbgw_result_unstage();
	/* ... or during a pool's task, or it failed beyond recovery. */
	if (in_pool)
	{
		dynbgw_task_end(my_number,
						stop_requested ? DYNBGW_RUN_STOPPED : DYNBGW_RUN_FAILED,
						stop_requested ? 0 : last_error_code,
						stop_requested ? NULL : last_error, NULL);
		dynbgw_pool_leave(my_number);
	}
	memset(&report, 0, sizeof(report));
	report.failed = code != 0;
	report.stopped = stop_requested;
	report.completed_run = completed_run;
	report.authority_revoked = dynbgw_authority_revoked;
	report.error_code = last_error_code;
	report.error = last_error;
	if (!dynbgw_slot_exit(my_number, my_generation, &report, &after))
		return;

	if (report.stopped)
		ereport(LOG, (errmsg("dynbgw worker %d stopped", my_number)));
	else if (report.gave_up)
		ereport(LOG,
				(errmsg("dynbgw worker %d will not be restarted", my_number),
				 dynbgw_authority_revoked ?
				 errdetail("It has lost the authority it was launched with.") :
				 report.failed_starts < DYNBGW_MAX_FAILED_STARTS ?
				 errdetail("Its database no longer exists.") :
				 errdetail("It exited abnormally %d times in a row without completing a run.",
						   report.failed_starts)));
	if (after.end_registration && !after.have_handle)
		after.have_handle = dynbgw_find_own_handle(&after.handle);
	dynbgw_after_unlock(&after);
	/* Also one that gave up before it joined (its database dropped). */
	if (my_pool_id != 0)
		dynbgw_pool_check_left();
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
	DynbgwDefinition *def;
	DynbgwSavedWorker *saved;
	DynbgwOccupant occupant;
	bool		have_saved = false;

	if (args->n < 1 || args->n > reg->capacity)
		return NULL;

	saved = palloc(sizeof(DynbgwSavedWorker));
	def = MemoryContextAlloc(TopMemoryContext, sizeof(DynbgwDefinition));
	/* Only a slot lost to a crash-restart is worth reading the file for. */
	dynbgw_slot_look(args->n, &occupant);
	if (occupant.state == DYNBGW_FREE && occupant.generation < args->generation)
		have_saved = dynbgw_load_worker(args->n, args->generation, saved);

	my_number = args->n;
	my_generation = args->generation;
	before_shmem_exit(dynbgw_worker_exit, (Datum) 0);
	have_slot = dynbgw_slot_claim(args->n, args->generation,
								  have_saved ? saved : NULL, def, &my_runs);
	pfree(saved);
	if (!have_slot)
	{
		/* Not ours after all: neither is a file a crash-restart left for us. */
		dynbgw_forget_worker(args->n, args->generation);
		pfree(def);
		return NULL;
	}
	return def;
}

/*
 * Before a worker is ready, at its launch and at every restart: its
 * authority still holds (a worker brought back after a crash-restart too),
 * and it fits its role's and database's connection limits as a new
 * connection would.  An error here ends the process with exit status 1.
 */
static void
dynbgw_check_start(const DynbgwDefinition *def)
{
	DynbgwLimits limits;

	StartTransactionCommand();
	dynbgw_authority_check(def, my_number);
	dynbgw_limits_prepare(&limits, def);
	limits.unprivileged = false;	/* its slot had its place already */
	dynbgw_limit_error(&limits, dynbgw_slot_limits(&limits, my_number));
	CommitTransactionCommand();
}

/*
 * Tell the launcher we are ready, unless we were told to stop already, and
 * say when the first run is due.
 */
static void
dynbgw_report_ready(DynbgwState state, TimestampTz next_run)
{
	DynbgwOccupant occupant;
	DynbgwHandle handle;
	bool		found_handle = false;
	DynbgwAfter after;
	bool		ready;

	/* Brought back by a crash-restart: give stoppers the handle again. */
	dynbgw_slot_look(my_number, &occupant);
	if (!occupant.have_handle && !occupant.launcher_waits)
		found_handle = dynbgw_find_own_handle(&handle);

	dynbgw_catch_startup_errors(false);
	ready = dynbgw_slot_ready(my_number, state, next_run,
							  found_handle ? &handle : NULL, &after);
	dynbgw_after_unlock(&after);
	if (!ready)
		proc_exit(0);
}

/*
 * When runs are due.  With naptime, run k is due at origin + k * naptime: a
 * fixed rate that does not drift.  With a schedule, at the next time it
 * names after the last run.  Either way, a run that overran is followed at
 * once by one more, and the starts it missed are skipped.  Runs that a wake
 * or a retry started come in between and move nothing.
 */
typedef struct DynbgwTimetable
{
	TimestampTz origin;			/* naptime: when the worker became ready */
	int64		k;				/* naptime: the number of the next run */
	pg_tz	   *tz;				/* schedule: its time zone */
	TimestampTz due;			/* when the next scheduled run is due */
	TimestampTz retry_at;		/* when the failed run is tried again; 0: no
								 * retry pending */
	int			attempt;		/* the last attempt's number */
} DynbgwTimetable;

static void
dynbgw_timetable_start(const DynbgwDefinition *def, DynbgwTimetable *tt)
{
	memset(tt, 0, sizeof(*tt));
	tt->origin = GetCurrentTimestamp();
	if (def->has_schedule)
	{
		tt->tz = pg_tzset(def->timezone);
		if (tt->tz == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" not recognized", def->timezone)));
		tt->due = dynbgw_schedule_next(&def->schedule, tt->tz, tt->origin);
	}
	else
	{
		/* An idle worker's first run is its first wake-up. */
		tt->k = def->command[0] != '\0' ? 0 : 1;
		tt->due = tt->origin + tt->k * def->naptime_us;
	}
}

/* Move on past a run that finished at now. */
static void
dynbgw_timetable_advance(const DynbgwDefinition *def, DynbgwTimetable *tt,
						 TimestampTz now)
{
	if (def->has_schedule)
		tt->due = dynbgw_schedule_next(&def->schedule, tt->tz,
									   Max(now, tt->due));
	else
	{
		tt->k++;
		if (def->naptime_us > 0)
			tt->k = Max(tt->k, (now - tt->origin) / def->naptime_us);
		tt->due = tt->origin + tt->k * def->naptime_us;
	}
}

/*
 * After an attempt, whether its run is tried again, and when: a failure (a
 * cancel is not one) after retry_delay, doubled at each attempt, while
 * retries are left, before the next scheduled run, which takes over, and
 * within PostgreSQL's timestamps, which every reader of next_run handles.
 * A run with no scheduled run after it (the last of runs) is retried
 * whenever.  Sets tt->retry_at (0: none); true if a retry is planned.
 */
static bool
dynbgw_plan_retry(const DynbgwDefinition *def, DynbgwTimetable *tt,
				  int attempt, DynbgwRunStatus status, TimestampTz finished)
{
	bool		another_run = def->max_runs == 0 || my_runs + 1 < def->max_runs;
	int64		delay = def->retry_delay_us;
	TimestampTz at;

	tt->retry_at = 0;
	tt->attempt = attempt;
	if (status != DYNBGW_RUN_FAILED || attempt > def->retry)
		return false;
	for (int i = 1; i < attempt; i++)
	{
		if (pg_mul_s64_overflow(delay, 2, &delay))
			return false;
	}
	if (pg_add_s64_overflow(finished, delay, &at) || !IS_VALID_TIMESTAMP(at) ||
		(another_run && at >= tt->due))
		return false;
	tt->retry_at = at;
	return true;
}

/*
 * Log a failed run, at most once a second: a command that fails at once,
 * run back to back, must not flood the log.  The lines left out are
 * counted in the next one, and the texts are cut as in the registry.
 */
static void
dynbgw_log_failure(const ErrorData *edata, TimestampTz now)
{
	if (last_failure_logged != 0 &&
		!TimestampDifferenceExceeds(last_failure_logged, now,
									DYNBGW_FAILURE_LOG_INTERVAL_MS))
	{
		failures_not_logged++;
		return;
	}
	ereport(LOG,
			(failures_not_logged > 0 ?
			 errmsg("dynbgw worker %d: command failed with SQLSTATE %s, and %lld more times since the last report",
					my_number, unpack_sql_state(edata->sqlerrcode),
					(long long) failures_not_logged) :
			 errmsg("dynbgw worker %d: command failed with SQLSTATE %s",
					my_number, unpack_sql_state(edata->sqlerrcode)),
			 errdetail_internal("%.*s",
								dynbgw_clip_length(edata->message, DYNBGW_MAX_ERROR),
								edata->message),
			 edata->hint ?
			 errhint("%.*s", dynbgw_clip_length(edata->hint, DYNBGW_MAX_ERROR),
					 edata->hint) : 0));
	last_failure_logged = now;
	failures_not_logged = 0;
}

/*
 * The worker's authority is gone: it runs nothing more.  The reason is kept
 * in the registry and the log; the clean exit ends its registration.
 */
static void
dynbgw_end_for_good(const ErrorData *edata)
{
	dynbgw_slot_lose_authority(my_number, edata);
	/* Its pool's other workers share its authority: the pool is done. */
	if (in_pool)
	{
		dynbgw_task_end(my_number, DYNBGW_RUN_FAILED, edata->sqlerrcode,
						edata->message, NULL);
		dynbgw_pool_close(my_pool_id, edata);
	}
	ereport(LOG,
			(errmsg("dynbgw worker %d ends for good: it has lost the authority it was launched with",
					my_number),
			 errdetail_internal("%s", edata->detail)));
	proc_exit(0);
}

/*
 * Run a command once, within run_timeout, and recover from its failure;
 * keep its rows under key if it keeps results.  The caller has set in_run
 * with dynbgw_begin_run().  Returns how it went, with its error in *edata
 * (NULL if it succeeded), in run_context, and its result tag in result.
 * Submitter: the role that submitted a pool's task, InvalidOid for a
 * worker's own runs.
 */
static DynbgwRunStatus
dynbgw_attempt(const DynbgwDefinition *def, MemoryContext run_context,
			   const DynbgwResultKey *key, Oid submitter, char *result,
			   ErrorData **edata)
{
	*edata = NULL;
	PG_TRY();
	{
		if (def->run_timeout_ms > 0)
			enable_timeout_after(run_timeout_id, def->run_timeout_ms);
		dynbgw_command_run(def, my_number, submitter,
						   def->keep_result ?
						   dynbgw_result_receiver(key, my_generation, def) : NULL,
						   result);
		disable_timeout(run_timeout_id, false);
	}
	PG_CATCH();
	{
		in_run = false;
		MemoryContextSwitchTo(run_context);
		*edata = CopyErrorData();
		FlushErrorState();
		dynbgw_command_recover();
		/* The abort left us in TopMemoryContext. */
		MemoryContextSwitchTo(run_context);
		if ((*edata)->message == NULL)
			(*edata)->message = pstrdup("missing error text");
	}
	PG_END_TRY();
	in_run = false;
	/* a cancel that came too late to cancel anything */
	QueryCancelPending = false;
	if (*edata == NULL)
	{
		completed_run = true;
		return DYNBGW_RUN_SUCCEEDED;
	}

	/* A failed run leaves the session as a successful one does. */
	dynbgw_command_reset(def);
	MemoryContextSwitchTo(run_context);
	result[0] = '\0';
	if ((*edata)->sqlerrcode != ERRCODE_QUERY_CANCELED)
		return DYNBGW_RUN_FAILED;
	if (run_timed_out)
	{
		(*edata)->message = psprintf("canceling run due to run_timeout of %d ms",
									 def->run_timeout_ms);
		return DYNBGW_RUN_FAILED;
	}
	return cancel_requested ? DYNBGW_RUN_CANCELLED : DYNBGW_RUN_FAILED;
}

/* The cancel flags cleared as a run starts: a cancel from now is for it. */
static void
dynbgw_begin_run(void)
{
	cancel_requested = false;
	run_timed_out = false;
	in_run = true;
}

/*
 * One attempt of a run: the command if there is one, else just a counted
 * wake-up.  It is the run's first, or its retry if one is pending, started
 * by the timetable or, if woken, by a wake.  Moves the timetable on past a
 * scheduled run, and plans the retry of a failed one.
 */
static void
dynbgw_run(const DynbgwDefinition *def, MemoryContext run_context,
		   DynbgwTimetable *tt, bool woken)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(run_context);
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz finished;
	ErrorData  *edata;
	DynbgwRunStatus status;
	char		result[DYNBGW_MAX_RESULT];
	DynbgwResultKey key = {my_number, 0};
	bool		retrying = tt->retry_at != 0;
	int			attempt = retrying ? tt->attempt + 1 : 1;
	DynbgwTrigger trigger;
	bool		final;

	trigger = woken ? DYNBGW_TRIGGER_WAKE :
		retrying ? DYNBGW_TRIGGER_RETRY : DYNBGW_TRIGGER_SCHEDULE;
	dynbgw_slot_run_start(my_number, started, trigger, attempt);
	dynbgw_begin_run();
	status = dynbgw_attempt(def, run_context, &key, InvalidOid, result,
							&edata);

	finished = GetCurrentTimestamp();
	if (dynbgw_authority_revoked)
		dynbgw_end_for_good(edata);
	if (edata != NULL)
		dynbgw_log_failure(edata, finished);
	if (trigger == DYNBGW_TRIGGER_SCHEDULE)
		dynbgw_timetable_advance(def, tt, finished);
	final = !dynbgw_plan_retry(def, tt, attempt, status, finished);
	dynbgw_slot_run_end(my_number, started, finished,
						final ? tt->due : tt->retry_at, status, final, edata,
						result);
	if (final)
		my_runs++;

	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(run_context);
}

/*
 * Sleep until the given time, a wake or a stop request; true if woken.  The
 * latch wait's own timeout counts whole milliseconds, and the kernel adds
 * up to one more, so a timer of the timeout module (microseconds, and it
 * sets the latch) wakes the worker when the run is due; the latch timeout,
 * a millisecond later, only backs it up.  Interrupts are served even when
 * the next run is already due, as with naptime 0: barriers (DROP DATABASE
 * elsewhere waits for one) and cancels must not wait for a pause in the
 * schedule.
 */
static bool
dynbgw_sleep_until(TimestampTz wake_at)
{
	for (;;)
	{
		int64		remaining_us;

		if (stop_requested)
			return false;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		remaining_us = wake_at - GetCurrentTimestamp();
		if (remaining_us <= 0)
			return false;
		if (dynbgw_slot_woken(my_number))
			return true;
		enable_timeout_at(wake_timeout_id, wake_at);
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(remaining_us / 1000 + 1, 3600 * 1000L),
						 dynbgw_wait_event(DYNBGW_WAIT_NAP));
		ResetLatch(MyLatch);
		disable_timeout(wake_timeout_id, false);
	}
}

/*
 * Run the command when it is due (see DynbgwTimetable), when woken, and
 * again after a failure while retries are left, from the moment the worker
 * is ready.
 */
static void
dynbgw_sql_loop(const DynbgwDefinition *def)
{
	MemoryContext run_context;
	DynbgwTimetable tt;

	run_context = AllocSetContextCreate(TopMemoryContext, "dynbgw run",
										ALLOCSET_DEFAULT_SIZES);
	run_timeout_id = RegisterTimeout(USER_TIMEOUT, dynbgw_run_timeout_handler);
	wake_timeout_id = RegisterTimeout(USER_TIMEOUT, dynbgw_wake_handler);
	pgstat_report_activity(STATE_IDLE, NULL);
	dynbgw_timetable_start(def, &tt);
	dynbgw_report_ready(DYNBGW_IDLE, tt.due);

	for (;;)
	{
		bool		woken;

		woken = dynbgw_sleep_until(tt.retry_at != 0 ? tt.retry_at : tt.due);
		if (stop_requested)
			break;

		dynbgw_run(def, run_context, &tt, woken);
		if (stop_requested)
			break;
		if (def->max_runs > 0 && my_runs >= def->max_runs)
		{
			ereport(LOG,
					(errmsg_plural("dynbgw worker %d finished its %lld run",
								   "dynbgw worker %d finished its %lld runs",
								   (unsigned long) def->max_runs,
								   my_number, (long long) def->max_runs)));
			proc_exit(0);
		}
	}
}

/*
 * Run a task that a pool's worker took (dynbgw_task_take()) as the worker's
 * own runs are run, as the pool's role, once the role that submitted it is
 * found to still have the right to act as that role.  task_def is the
 * worker's definition, to which the task brings its command and settings.
 */
static void
dynbgw_run_task(DynbgwDefinition *task_def, const DynbgwTaskTaken *taken,
				MemoryContext run_context)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(run_context);
	TimestampTz started = GetCurrentTimestamp();
	TimestampTz finished;
	ErrorData  *edata;
	DynbgwRunStatus status;
	char		result[DYNBGW_MAX_RESULT];
	DynbgwResultKey key = {0, taken->id};

	strlcpy(task_def->command, taken->command, DYNBGW_MAX_COMMAND);
	task_def->keep_result = taken->keep_result;
	task_def->run_timeout_ms = taken->run_timeout_ms;
	dynbgw_slot_run_start(my_number, started, DYNBGW_TRIGGER_TASK, 1);
	status = dynbgw_attempt(task_def, run_context, &key, taken->submitter,
							result, &edata);

	finished = GetCurrentTimestamp();
	dynbgw_task_end(my_number, status, edata ? edata->sqlerrcode : 0,
					edata ? edata->message : NULL, result);
	if (dynbgw_authority_revoked)
		dynbgw_end_for_good(edata);
	if (edata != NULL)
		dynbgw_log_failure(edata, finished);
	dynbgw_slot_run_end(my_number, started, finished, 0, status, true, edata,
						result);
	my_runs++;

	MemoryContextSwitchTo(oldcontext);
	MemoryContextReset(run_context);
}

/*
 * A pool's worker: join the pool, then take its tasks one after the other,
 * sleeping on the latch, which a submission sets once the worker has said
 * it waits (dynbgw_task_take() finding nothing), while none waits.  A
 * cancel counts from before a task is taken, so that one sent as the task
 * starts is not lost.
 */
static void
dynbgw_pool_loop(const DynbgwDefinition *def)
{
	MemoryContext run_context;
	DynbgwDefinition *task_def;
	DynbgwTaskTaken *taken;

	run_context = AllocSetContextCreate(TopMemoryContext, "dynbgw task",
										ALLOCSET_DEFAULT_SIZES);
	task_def = MemoryContextAlloc(TopMemoryContext, sizeof(DynbgwDefinition));
	*task_def = *def;
	taken = MemoryContextAlloc(TopMemoryContext, sizeof(DynbgwTaskTaken));
	run_timeout_id = RegisterTimeout(USER_TIMEOUT, dynbgw_run_timeout_handler);
	if (!dynbgw_pool_join(my_number, def))
		proc_exit(0);
	in_pool = true;
	pgstat_report_activity(STATE_IDLE, NULL);
	dynbgw_report_ready(DYNBGW_IDLE, 0);

	for (;;)
	{
		DynbgwQueueStatus status;

		if (stop_requested)
			break;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		dynbgw_begin_run();
		status = dynbgw_task_take(my_number, taken);
		if (status == DYNBGW_QUEUE_DONE)
		{
			dynbgw_run_task(task_def, taken, run_context);
			continue;
		}
		in_run = false;
		QueryCancelPending = false;
		if (status == DYNBGW_QUEUE_NO_POOL)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1,
						 dynbgw_wait_event(DYNBGW_WAIT_NAP));

		/*
		 * Reset after the wait, never before the first: a process that had
		 * this PGPROC before may have left its latch marked as sleeping (an
		 * entry point ended by FATAL in its signal handler), which only a
		 * wait clears.
		 */
		ResetLatch(MyLatch);
	}
}

/*
 * As bgworker.c's bgworker_die(): what SIGTERM does to an entry point that
 * was not written for dynbgw.
 */
static void
dynbgw_entry_point_die(SIGNAL_ARGS)
{
	stop_requested = true;
	ereport(FATAL,
			(errcode(ERRCODE_ADMIN_SHUTDOWN),
			 errmsg("terminating background worker \"%s\" due to administrator command",
					MyBgworkerEntry->bgw_type)));
}

/*
 * Call a library's entry point with the contract PostgreSQL documents for
 * one: SIGTERM ends the process even if the code never checks for
 * interrupts, SIGHUP is ignored until it sets a handler, and signals are
 * blocked until it calls BackgroundWorkerUnblockSignals().
 */
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

	sigprocmask(SIG_SETMASK, &BlockSig, NULL);
	pqsignal(SIGTERM, dynbgw_entry_point_die);
	pqsignal(SIGHUP, PG_SIG_IGN);
	/* A stop that came before the handler was set is not lost. */
	if (stop_requested)
		kill(MyProcPid, SIGTERM);
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
	dynbgw_catch_startup_errors(true);

	def = dynbgw_claim(&args);
	if (def == NULL)
		proc_exit(0);
	my_pool_id = def->pool_id;

	/* Foreign code expects a cancel to work at any time. */
	if (def->kind == DYNBGW_KIND_FUNCTION)
		pqsignal(SIGINT, StatementCancelHandler);

	/* Only a connected worker has a session to name. */
	if (OidIsValid(def->dboid))
	{
		BackgroundWorkerInitializeConnectionByOid(def->dboid, def->roleoid,
												  DYNBGW_CONNECT_FLAGS);
		snprintf(name, sizeof(name), "dynbgw worker %d", my_number);
		/* The values a run's RESET, and the reset after it, return to. */
		SetConfigOption("application_name", name, PGC_USERSET, PGC_S_OVERRIDE);
		/* Its own role, whatever ALTER ROLE or DATABASE ... SET role says. */
		SetConfigOption("role", "none", PGC_USERSET, PGC_S_OVERRIDE);
	}
	if (def->kind == DYNBGW_KIND_SQL)
		dynbgw_check_start(def);

	if (def->kind == DYNBGW_KIND_FUNCTION)
	{
		dynbgw_call_entry_point(def);
		return;
	}

	if (def->pool_id != 0)
		dynbgw_pool_loop(def);
	else
		dynbgw_sql_loop(def);
}

/*
 * A minimal entry point for dynbgw_launch_function(): it waits on its latch
 * until terminated, or for main_arg milliseconds if that is positive.  Used
 * by the tests and to measure the cost of a bare worker.  Written to
 * PostgreSQL's plain contract for entry points: it unblocks signals and
 * leaves SIGTERM to the default handler, never checking for interrupts.
 */
void
dynbgw_sleep_main(Datum main_arg)
{
	int64		timeout_ms = DatumGetInt64(main_arg);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz until = DT_NOEND;

	BackgroundWorkerUnblockSignals();
	/* A timeout past the end of time is no timeout. */
	if (timeout_ms > 0 && timeout_ms < (DT_NOEND - now) / 1000)
		until = now + timeout_ms * 1000;
	for (;;)
	{
		long		wait_ms = dynbgw_ms_until(until);

		if (wait_ms <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, dynbgw_wait_event(DYNBGW_WAIT_NAP));
		ResetLatch(MyLatch);
	}
}

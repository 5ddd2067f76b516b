/*-------------------------------------------------------------------------
 *
 * dynbgw_slot.c
 *		The life of a launch in its registry slot, as named transitions.
 *
 * Every change of a slot's shared state is made here and nowhere else.  A
 * transition takes the registry lock, checks the slot against what it
 * expects (the generation, the process), asserts that the slot's state is
 * one the transition may start from (dynbgw_allowed_from[]), changes the
 * fields and releases the lock; what the caller must do then (remove a
 * file, end a registration, wake waiters) it leaves in a DynbgwAfter for
 * dynbgw_after_unlock().  The readers, in dynbgw_slot_read.c, only copy
 * what their callers need under the lock, so that names are looked up,
 * memory allocated and errors raised after it is released.  So the
 * registry's rules can be checked here:
 *
 *	- Nothing allocates, raises an error or does I/O while holding the lock.
 *	  The one system call made under it is a stop's kill(): the worker
 *	  cannot leave its slot meanwhile, so its PID cannot have been reused.
 *	- While a launcher waits (launcher_latch is set), only the launcher
 *	  frees the slot: a worker that exits leaves it EXITED, and a stop only
 *	  marks it stopped, for the launcher to settle.
 *	- A stopped launch is never restarted: stop_requested is set by stops
 *	  and abandoned launches, and cleared only when the slot takes a new
 *	  launch (reserve, adopt).
 *
 * docs/design.md draws the state machine as a table that follows the code.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "utils/elog.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

typedef enum DynbgwTransition
{
	DYNBGW_RESERVE,
	DYNBGW_REGISTERED,
	DYNBGW_ADOPT,
	DYNBGW_CLAIM,
	DYNBGW_READY,
	DYNBGW_RUN_START,
	DYNBGW_RUN_END,
	DYNBGW_LOSE_AUTHORITY,
	DYNBGW_EXIT,
	DYNBGW_SETTLE,
	DYNBGW_ABANDON,
	DYNBGW_REQUEST_STOP,
	DYNBGW_WAKE,
	DYNBGW_FREE_SLOT
} DynbgwTransition;

#define IN(state)	(1U << (state))

/* The states each transition may start from. */
static const uint32 dynbgw_allowed_from[] PG_USED_FOR_ASSERTS_ONLY = {
	[DYNBGW_RESERVE] = IN(DYNBGW_FREE),
	/* the launcher waits, so nothing has freed or restarted the slot */
	[DYNBGW_REGISTERED] = IN(DYNBGW_STARTING) | IN(DYNBGW_IDLE) |
	IN(DYNBGW_RUNNING) | IN(DYNBGW_STOPPING) | IN(DYNBGW_EXITED),
	[DYNBGW_ADOPT] = IN(DYNBGW_FREE),
	[DYNBGW_CLAIM] = IN(DYNBGW_STARTING) | IN(DYNBGW_RESTARTING) |
	IN(DYNBGW_EXITED),
	[DYNBGW_READY] = IN(DYNBGW_STARTING) | IN(DYNBGW_STOPPING),
	[DYNBGW_RUN_START] = IN(DYNBGW_IDLE) | IN(DYNBGW_STOPPING),
	[DYNBGW_RUN_END] = IN(DYNBGW_RUNNING) | IN(DYNBGW_STOPPING),
	[DYNBGW_LOSE_AUTHORITY] = IN(DYNBGW_RUNNING) | IN(DYNBGW_STOPPING),
	[DYNBGW_EXIT] = IN(DYNBGW_STARTING) | IN(DYNBGW_IDLE) |
	IN(DYNBGW_RUNNING) | IN(DYNBGW_STOPPING),
	[DYNBGW_SETTLE] = IN(DYNBGW_STARTING) | IN(DYNBGW_IDLE) |
	IN(DYNBGW_RUNNING) | IN(DYNBGW_STOPPING) | IN(DYNBGW_EXITED),
	[DYNBGW_ABANDON] = IN(DYNBGW_STARTING) | IN(DYNBGW_IDLE) |
	IN(DYNBGW_RUNNING) | IN(DYNBGW_STOPPING) | IN(DYNBGW_RESTARTING) |
	IN(DYNBGW_EXITED),
	[DYNBGW_REQUEST_STOP] = IN(DYNBGW_STARTING) | IN(DYNBGW_IDLE) |
	IN(DYNBGW_RUNNING) | IN(DYNBGW_STOPPING) | IN(DYNBGW_RESTARTING) |
	IN(DYNBGW_EXITED),
	[DYNBGW_WAKE] = IN(DYNBGW_STARTING) | IN(DYNBGW_IDLE) | IN(DYNBGW_RUNNING),
	[DYNBGW_FREE_SLOT] = IN(DYNBGW_STARTING) | IN(DYNBGW_IDLE) |
	IN(DYNBGW_RUNNING) | IN(DYNBGW_STOPPING) | IN(DYNBGW_RESTARTING) |
	IN(DYNBGW_EXITED)
};

#define ASSERT_MAY(slot, transition) \
	Assert(dynbgw_allowed_from[transition] & IN((slot)->state))

/* ---- with the lock held ---- */

/*
 * Keep an error message in a slot, cut at a character boundary.  It stays
 * in the encoding of the database of the process that reported it.
 */
static void
dynbgw_set_error(DynbgwSlot *slot, int code, const char *message)
{
	slot->error_code = code;
	slot->error_encoding = GetDatabaseEncoding();
	dynbgw_clip(slot->last_error, message, DYNBGW_MAX_ERROR);
}

/*
 * How a launch that ends now ended: stopped if a stop was asked for, failed
 * if it failed (see DynbgwOutcome) or its last run did, else succeeded.
 */
static DynbgwOutcome
dynbgw_outcome_of(const DynbgwSlot *slot, bool failed)
{
	if (slot->stop_requested)
		return DYNBGW_OUTCOME_STOPPED;
	if (failed || slot->last_run_failed)
		return DYNBGW_OUTCOME_FAILED;
	return DYNBGW_OUTCOME_SUCCEEDED;
}

/*
 * How the launch in a slot stands, or ended (outcome, its last process
 * pid, when: ended_at), as dynbgw_wait() shows it.  Called with the
 * registry lock held; also by dynbgw_slot_ending(), for a launch that
 * runs.
 */
void
dynbgw_ending_locked(const DynbgwSlot *slot, DynbgwOutcome outcome, int pid,
					 TimestampTz ended_at, DynbgwEnding *ending)
{
	ending->generation = slot->generation;
	ending->outcome = outcome;
	ending->pid = pid;
	ending->roleoid = slot->def.roleoid;
	ending->runs = slot->runs;
	ending->failures = slot->failures;
	ending->ended_at = ended_at;
	ending->error_code = slot->error_code;
	ending->error_encoding = slot->error_encoding;
	strlcpy(ending->error, slot->last_error, sizeof(ending->error));
	strlcpy(ending->result, slot->last_result, sizeof(ending->result));
}

/*
 * Free: the launch has ended.  Keep how, for dynbgw_wait(), with the end
 * before it for a waiter that a quick relaunch and end left behind.  Never
 * while a launcher waits: it settles its launch itself.
 */
static void
dynbgw_free_slot(DynbgwSlot *slot, DynbgwOutcome outcome)
{
	ASSERT_MAY(slot, DYNBGW_FREE_SLOT);
	Assert(slot->launcher_latch == NULL);
	slot->ended_before = slot->ended;
	slot->state = DYNBGW_FREE;
	dynbgw_ending_locked(slot, outcome,
						 slot->last_pid != 0 ? slot->last_pid : slot->ready_pid,
						 GetCurrentTimestamp(), &slot->ended);
}

/*
 * Add a run of the launch in this slot to the history ring, overwriting
 * the oldest, in the same hold of the lock as the slot's own record of it.
 */
static void
dynbgw_record_run(const DynbgwSlot *slot, int n, TimestampTz started,
				  TimestampTz finished, DynbgwRunStatus status,
				  int error_code, const char *message)
{
	DynbgwRun  *run;

	/* A pool's tasks are kept in the history of tasks instead. */
	if (dynbgw_reg->history_size == 0 || slot->def.pool_id != 0)
		return;
	run = &dynbgw_history(dynbgw_reg)[dynbgw_reg->runs_recorded++ %
									  dynbgw_reg->history_size];
	run->n = n;
	run->launch = slot->generation;
	run->pid = MyProcPid;
	run->roleoid = slot->def.roleoid;
	run->dboid = slot->def.dboid;
	run->started = started;
	run->finished = finished;
	run->status = status;
	run->trigger = slot->last_trigger;
	run->attempt = slot->last_attempt;
	run->encoding = GetDatabaseEncoding();
	run->error_code = error_code;
	dynbgw_clip(run->message, message ? message : "", DYNBGW_MAX_RUN_ERROR);
	strlcpy(run->result, status == DYNBGW_RUN_SUCCEEDED ? slot->last_result : "",
			sizeof(run->result));
}

/* What a transition hands to dynbgw_after_unlock(): nothing yet. */
static void
dynbgw_after_init(DynbgwAfter *after, int n, uint64 generation)
{
	memset(after, 0, sizeof(*after));
	after->n = n;
	after->generation = generation;
}

/* The registration to end once the lock is released, if the slot has it. */
static void
dynbgw_after_end_registration(DynbgwAfter *after, const DynbgwSlot *slot)
{
	after->end_registration = true;
	after->have_handle = slot->have_handle;
	after->handle = slot->bgw_handle;
}

/* A launch's process-to-be: no run started yet, and no wake for it. */
static void
dynbgw_slot_new_process(DynbgwSlot *slot)
{
	slot->last_trigger = DYNBGW_TRIGGER_SCHEDULE;
	slot->last_attempt = 1;
	pg_atomic_write_u32(&slot->wake_pending, 0);
	slot->worker_latch = NULL;
}

/* ---- the launcher's transitions ---- */

/*
 * Reserve: a free slot takes a new launch, if the limits leave room for
 * it, and the launcher waits for its worker.  Returns the launch's
 * generation, or 0 with the limit it exceeds, or with who holds the number.
 */
uint64
dynbgw_slot_reserve(int n, const DynbgwDefinition *def,
					const DynbgwLimits *limits, TimestampTz launched_at,
					DynbgwLimit *exceeded, DynbgwOccupant *occupant)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	uint64		generation = 0;

	*exceeded = DYNBGW_LIMIT_NONE;
	dynbgw_lock(LW_EXCLUSIVE);
	if (slot->state != DYNBGW_FREE)
		dynbgw_occupant_locked(slot, occupant);
	else if ((*exceeded = dynbgw_count_limits_locked(limits, 0)) == DYNBGW_LIMIT_NONE)
	{
		ASSERT_MAY(slot, DYNBGW_RESERVE);
		generation = ++dynbgw_reg->last_generation;
		slot->generation = generation;
		slot->def = *def;
		slot->launched_at = launched_at;
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
		dynbgw_slot_new_process(slot);
	}
	dynbgw_unlock();
	return generation;
}

/*
 * Registered: the postmaster has the launch's worker.  Its handle is kept
 * so that any session can end the registration.
 */
void
dynbgw_slot_registered(int n, uint64 generation,
					   const BackgroundWorkerHandle *handle)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);

	dynbgw_lock(LW_EXCLUSIVE);
	Assert(slot->generation == generation);
	ASSERT_MAY(slot, DYNBGW_REGISTERED);
	memcpy(&slot->bgw_handle, handle, sizeof(DynbgwHandle));
	slot->have_handle = true;
	dynbgw_unlock();
}

/*
 * Settle: the launcher looks how its launch stands.  Once the worker is
 * ready, what happens to it is no longer the launch's doing.  Once it is
 * gone (process_gone: the postmaster says the process stopped), the
 * launcher decides: a worker that was ready and wanted a restart is
 * restarted, unless it was stopped; any other launch ends.
 */
DynbgwLaunchStatus
dynbgw_slot_settle(int n, uint64 generation, bool process_gone,
				   DynbgwSettled *settled, DynbgwAfter *after)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	DynbgwLaunchStatus status = DYNBGW_LAUNCH_WAITING;
	bool		exited;

	dynbgw_after_init(after, n, generation);
	dynbgw_lock(LW_EXCLUSIVE);
	if (slot->generation != generation)
	{
		dynbgw_unlock();
		return DYNBGW_LAUNCH_LOST;
	}
	ASSERT_MAY(slot, DYNBGW_SETTLE);
	settled->ready_pid = slot->ready_pid;
	settled->stopped = slot->stop_requested;
	exited = slot->state == DYNBGW_EXITED;
	if (settled->ready_pid != 0 && !exited)
	{
		slot->launcher_latch = NULL;
		status = DYNBGW_LAUNCH_READY;
	}
	else if (exited ||
			 (slot->pid == 0 && (process_gone || settled->stopped)))
	{
		/*
		 * Not process_gone: once the postmaster has reaped the process it
		 * says so also of a registration that waits for its restart.  The
		 * worker's exit kept its registration exactly when it wanted one.
		 */
		settled->restarts = settled->ready_pid != 0 &&
			slot->restart_after_exit && !settled->stopped;
		slot->launcher_latch = NULL;
		if (settled->restarts)
			slot->state = DYNBGW_RESTARTING;
		else
		{
			dynbgw_free_slot(slot,
							 dynbgw_outcome_of(slot, settled->ready_pid == 0 ||
											   slot->exit_failed));
			/* A launch that succeeded ends as its worker's stop would. */
			if (settled->ready_pid != 0)
				dynbgw_after_end_registration(after, slot);
		}
		settled->error_code = slot->error_code;
		settled->error_encoding = slot->error_encoding;
		strlcpy(settled->error, slot->last_error, sizeof(settled->error));
		after->wake_waiters = true;
		status = DYNBGW_LAUNCH_GONE;
	}
	dynbgw_unlock();
	return status;
}

/*
 * Abandon: a launch that failed or was cancelled before it returned, also
 * after its worker was ready (its definition could not be saved).  A slot
 * with no process is freed now, whatever its state, a worker waiting for
 * its restart included: the launch ends its registration, so nothing would
 * restart it.  One with a process is left to that process, marked stopped,
 * to free as it exits.  Nothing if the launch has ended already.
 */
void
dynbgw_slot_abandon(int n, uint64 generation, DynbgwAfter *after)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);

	dynbgw_after_init(after, n, generation);
	dynbgw_lock(LW_EXCLUSIVE);
	if (slot->generation == generation && slot->state != DYNBGW_FREE)
	{
		ASSERT_MAY(slot, DYNBGW_ABANDON);
		slot->launcher_latch = NULL;
		slot->stop_requested = true;
		if (slot->pid == 0)
			dynbgw_free_slot(slot, DYNBGW_OUTCOME_FAILED);
		else
			slot->state = DYNBGW_STOPPING;
	}
	dynbgw_unlock();
	after->wake_waiters = true;
}

/* ---- the worker's transitions ---- */

/*
 * Lock the registry for a transition of the worker that holds slot n, and
 * return the slot.
 */
static DynbgwSlot *
dynbgw_lock_own_slot(int n, DynbgwTransition transition)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);

	dynbgw_lock(LW_EXCLUSIVE);
	Assert(slot->pid == MyProcPid);
	ASSERT_MAY(slot, transition);
	return slot;
}

/*
 * Adopt: a restarted worker whose slot a crash-restart emptied takes it
 * back from its saved definition, as one waiting for its restart.
 */
static void
dynbgw_slot_adopt(DynbgwSlot *slot, const DynbgwSavedWorker *saved)
{
	ASSERT_MAY(slot, DYNBGW_ADOPT);
	slot->generation = saved->generation;
	slot->def = saved->def;
	slot->launched_at = saved->launched_at;
	slot->launched_by_pid = saved->launched_by_pid;
	slot->state = DYNBGW_RESTARTING;
	slot->stop_requested = false;
	slot->failed_starts = 0;
	slot->have_handle = false;
	slot->launcher_latch = NULL;
	slot->runs = slot->failures = 0;
	slot->last_started = slot->last_finished = slot->next_run = 0;
	slot->last_duration_us = 0;
	slot->last_error[0] = '\0';
	dynbgw_slot_new_process(slot);
	dynbgw_reg->last_generation = Max(dynbgw_reg->last_generation,
									  saved->generation);
}

/*
 * Claim: the worker of this generation takes its slot, reserved for it or
 * waiting for its restart, adopting it first from its saved definition
 * (saved, or NULL) if a crash-restart emptied it.  A worker restarted while
 * its launcher, stalled, has not yet settled the previous process's exit
 * takes the slot as from RESTARTING; the launcher then waits for this
 * process.  False if the slot is not ours: the launch was abandoned,
 * stopped or replaced.  Copies the definition and the runs done so far.
 */
bool
dynbgw_slot_claim(int n, uint64 generation, const DynbgwSavedWorker *saved,
				  DynbgwDefinition *def, int64 *runs)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	bool		claimed = false;

	dynbgw_lock(LW_EXCLUSIVE);
	if (saved != NULL && slot->state == DYNBGW_FREE &&
		slot->generation < generation)
		dynbgw_slot_adopt(slot, saved);
	if (slot->generation == generation &&
		(slot->state == DYNBGW_STARTING || slot->state == DYNBGW_RESTARTING ||
		 (slot->state == DYNBGW_EXITED && slot->restart_after_exit)) &&
		slot->pid == 0 && !slot->stop_requested)
	{
		ASSERT_MAY(slot, DYNBGW_CLAIM);
		slot->pid = MyProcPid;
		slot->ready_pid = 0;
		slot->state = DYNBGW_STARTING;
		slot->worker_latch = MyLatch;
		memcpy(def, &slot->def, sizeof(DynbgwDefinition));
		*runs = slot->runs;
		claimed = true;
	}
	dynbgw_unlock();
	return claimed;
}

/*
 * Ready: the worker is connected and waits for its first run (IDLE), or
 * runs its entry point (RUNNING), unless it was told to stop meanwhile;
 * then false.  Keeps the handle a worker brought back by a crash-restart
 * found (handle, or NULL).
 */
bool
dynbgw_slot_ready(int n, DynbgwState state, TimestampTz next_run,
				  const DynbgwHandle *handle, DynbgwAfter *after)
{
	DynbgwSlot *slot = dynbgw_lock_own_slot(n, DYNBGW_READY);
	bool		ready;

	dynbgw_after_init(after, n, slot->generation);
	ready = !slot->stop_requested;
	if (ready)
	{
		slot->state = state;
		slot->ready_pid = MyProcPid;
		slot->next_run = next_run;
	}
	if (handle != NULL && !slot->have_handle)
	{
		slot->bgw_handle = *handle;
		slot->have_handle = true;
	}
	after->launcher_latch = slot->launcher_latch;
	dynbgw_unlock();
	after->wake_waiters = true;
	return ready;
}

/*
 * Run start: an attempt of the worker's command starts.  It takes every
 * wake that came before: its transaction starts after them, so it sees
 * what they committed.
 */
void
dynbgw_slot_run_start(int n, TimestampTz started, DynbgwTrigger trigger,
					  int attempt)
{
	DynbgwSlot *slot = dynbgw_lock_own_slot(n, DYNBGW_RUN_START);

	if (!slot->stop_requested)
		slot->state = DYNBGW_RUNNING;
	slot->last_started = started;
	slot->next_run = 0;
	slot->last_trigger = trigger;
	slot->last_attempt = attempt;
	pg_atomic_write_u32(&slot->wake_pending, 0);
	dynbgw_unlock();
}

/*
 * Run end: the attempt is recorded, in the slot and in the history, with
 * when the next one is due, in one go.  edata is its error, or NULL.  The
 * run counts, with its outcome, once it is final: it succeeded, or failed
 * with no retry to come.
 */
void
dynbgw_slot_run_end(int n, TimestampTz started, TimestampTz finished,
					TimestampTz next_run, DynbgwRunStatus status, bool final,
					const ErrorData *edata, const char *result)
{
	DynbgwSlot *slot = dynbgw_lock_own_slot(n, DYNBGW_RUN_END);

	if (!slot->stop_requested)
		slot->state = DYNBGW_IDLE;
	slot->last_finished = finished;
	slot->last_duration_us = finished - started;
	slot->next_run = next_run;
	strlcpy(slot->last_result, result, DYNBGW_MAX_RESULT);
	if (edata != NULL)
		dynbgw_set_error(slot, edata->sqlerrcode, edata->message);
	if (final)
	{
		slot->runs++;
		slot->failures += edata != NULL;
		slot->last_run_failed = edata != NULL;
	}
	dynbgw_record_run(slot, n, started, finished, status,
					  edata ? edata->sqlerrcode : 0,
					  edata ? edata->message : NULL);
	dynbgw_unlock();
}

/*
 * Lose authority: the worker runs nothing more; why is kept, and the launch
 * ends as failed when the worker exits.
 */
void
dynbgw_slot_lose_authority(int n, const ErrorData *edata)
{
	DynbgwSlot *slot = dynbgw_lock_own_slot(n, DYNBGW_LOSE_AUTHORITY);

	dynbgw_set_error(slot, edata->sqlerrcode, edata->message);
	slot->last_run_failed = true;
	dynbgw_unlock();
}

/*
 * Decide restart: whether a restartable worker that exits abnormally, and
 * was not stopped, is restarted.  Not when its authority or its database
 * is gone, nor at the DYNBGW_MAX_FAILED_STARTS-th such exit in a row
 * without a completed run.
 */
static bool
dynbgw_decide_restart(DynbgwSlot *slot, DynbgwExit *report)
{
	if (report->completed_run)
		slot->failed_starts = 0;
	slot->failed_starts++;
	report->failed_starts = slot->failed_starts;
	if (report->authority_revoked)
		return false;
	if (slot->ready_pid == 0 && report->error_code == ERRCODE_UNDEFINED_DATABASE)
		return false;
	return slot->failed_starts < DYNBGW_MAX_FAILED_STARTS;
}

/*
 * Exit: the worker that holds slot n leaves it.  A run cut short is
 * counted.  While a launcher waits the slot is left EXITED, with what the
 * worker wanted next, for the launcher to settle; otherwise a worker that
 * is restarted keeps the slot (RESTARTING) and any other ends its launch.
 * A restartable worker that is not restarted ends its registration too,
 * because the postmaster would restart an exit through FATAL.  Sets
 * report->stopped, gave_up and failed_starts; false if the slot is not this
 * process's.
 */
bool
dynbgw_slot_exit(int n, uint64 generation, DynbgwExit *report,
				 DynbgwAfter *after)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	bool		restartable;
	bool		restart = false;

	dynbgw_after_init(after, n, generation);
	after->wake_waiters = true;
	dynbgw_lock(LW_EXCLUSIVE);
	if (slot->generation != generation || slot->pid != MyProcPid)
	{
		dynbgw_unlock();
		return false;
	}
	ASSERT_MAY(slot, DYNBGW_EXIT);
	restartable = slot->def.restart_s != BGW_NEVER_RESTART;
	report->stopped |= slot->stop_requested;

	/* A launcher still waiting reports why; a run cut short counts. */
	if (report->error[0] != '\0' &&
		(slot->ready_pid == 0 || slot->state == DYNBGW_RUNNING))
		dynbgw_set_error(slot, report->error_code, report->error);
	if (slot->state == DYNBGW_RUNNING && report->failed)
	{
		slot->runs++;
		slot->failures++;
		slot->last_run_failed = !report->stopped;
		slot->last_result[0] = '\0';
		dynbgw_record_run(slot, n, slot->last_started, GetCurrentTimestamp(),
						  report->stopped ? DYNBGW_RUN_STOPPED : DYNBGW_RUN_FAILED,
						  report->stopped ? 0 : report->error_code,
						  report->stopped ? NULL : report->error);
	}
	if (restartable && report->failed && !report->stopped)
	{
		restart = dynbgw_decide_restart(slot, report);
		report->gave_up = !restart;
	}
	slot->stop_requested |= report->stopped;
	slot->pid = 0;
	slot->worker_latch = NULL;
	slot->last_pid = MyProcPid;
	slot->next_run = 0;
	after->launcher_latch = slot->launcher_latch;
	if (slot->launcher_latch)
	{
		slot->state = DYNBGW_EXITED;
		slot->restart_after_exit = restart;
		slot->exit_failed = report->failed;
	}
	else if (restart)
		slot->state = DYNBGW_RESTARTING;
	else
	{
		dynbgw_free_slot(slot, dynbgw_outcome_of(slot, report->failed));
		after->forget_file = restartable;
	}

	/* Also while a stalled launcher has yet to settle: no restart. */
	if (restartable && !restart)
		dynbgw_after_end_registration(after, slot);
	dynbgw_unlock();
	return true;
}

/* ---- the stopper's transition ---- */

/*
 * Request stop: the launch of this generation in slot n is to end, and
 * never be restarted.  A launch waiting for its restart ends now.  A
 * worker is sent SIGTERM while the lock is held, so that its PID cannot
 * have been reused.  A launch without a process is left to its launcher.
 * False if the slot holds no such launch; else *was says what it held.
 */
bool
dynbgw_slot_request_stop(int n, uint64 generation, DynbgwOccupant *was,
						 DynbgwAfter *after)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);

	dynbgw_after_init(after, n, generation);
	dynbgw_lock(LW_EXCLUSIVE);
	if (slot->generation != generation || slot->state == DYNBGW_FREE)
	{
		dynbgw_unlock();
		return false;
	}
	ASSERT_MAY(slot, DYNBGW_REQUEST_STOP);
	dynbgw_occupant_locked(slot, was);
	slot->stop_requested = true;
	if (slot->state == DYNBGW_RESTARTING)
	{
		dynbgw_free_slot(slot, DYNBGW_OUTCOME_STOPPED);
		after->forget_file = true;
	}
	else if (slot->pid != 0)
	{
		slot->state = DYNBGW_STOPPING;
		if (kill(slot->pid, SIGTERM) != 0)
			after->kill_errno = errno;
		after->signalled_pid = slot->pid;
	}

	/*
	 * Also a registration not yet started: the process that starts anyway
	 * finds its slot gone, or stopped, and exits.
	 */
	if (slot->have_handle)
		dynbgw_after_end_registration(after, slot);
	after->launcher_latch = slot->launcher_latch;
	after->wake_waiters = true;
	dynbgw_unlock();
	return true;
}

/* ---- the waker's transition ---- */

/*
 * Wake: the launch of this generation in slot n, if its worker is or is
 * about to be ready, runs as soon as it can (see wake_pending).  Under the
 * shared lock, which keeps the slot and its latch to this launch: the one
 * field written is atomic, so that wakes from many sessions do not queue
 * for the lock.  A wake already pending sets no latch.  False if the slot
 * holds no such launch, or it is stopping or waits for its restart.
 */
bool
dynbgw_slot_wake(int n, uint64 generation)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	Latch	   *latch = NULL;
	bool		live;

	dynbgw_lock(LW_SHARED);
	live = slot->generation == generation &&
		dynbgw_state_wakeable(slot->state, slot->stop_requested);
	if (live)
	{
		ASSERT_MAY(slot, DYNBGW_WAKE);
		if (pg_atomic_exchange_u32(&slot->wake_pending, 1) == 0)
			latch = slot->worker_latch;
	}
	dynbgw_unlock();

	/* A process that has left the slot since only wakes up for nothing. */
	if (latch != NULL)
		SetLatch(latch);
	return live;
}

/* ---- after the lock is released ---- */

/*
 * Do what a transition left to do: the files before the registration,
 * both before waking those who wait on the slot, so that what they see
 * when they wake is over.
 */
void
dynbgw_after_unlock(const DynbgwAfter *after)
{
	if (after->kill_errno != 0)
	{
		errno = after->kill_errno;
		elog(WARNING, "could not send signal to process %d: %m",
			 after->signalled_pid);
	}
	if (after->forget_file)
		dynbgw_forget_worker(after->n, after->generation);
	if (after->end_registration && after->have_handle)
		TerminateBackgroundWorker((BackgroundWorkerHandle *) &after->handle);
	if (after->wake_waiters)
		ConditionVariableBroadcast(&dynbgw_slot_at(after->n)->state_cv);
	if (after->launcher_latch)
		SetLatch(after->launcher_latch);
}

/*-------------------------------------------------------------------------
 *
 * dynbgw_launch_protocol.c
 *		How a session launches a worker: reserve its number, register it
 *		with the postmaster, wait until it is ready, or give it all up.
 *
 * A launch either returns the PID of a connected, ready worker or raises
 * an error and leaves nothing behind.  While it waits, only the launcher
 * frees the slot (dynbgw_slot.c), so the number cannot pass to another
 * launch meanwhile; if it fails or is cancelled, dynbgw_abandon_launch()
 * frees what it reserved and ends the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

/* How long if_running => 'replace' waits for the old worker to go. */
#define DYNBGW_REPLACE_TIMEOUT_MS	10000

/* One launch in progress, for the cleanup that runs if it fails. */
typedef struct DynbgwLaunch
{
	int			n;
	uint64		generation;
	TimestampTz launched_at;
	bool		saved;			/* its definition may be in a file */
	BackgroundWorkerHandle *handle;
} DynbgwLaunch;

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
 * Free or stop what a failed launch left behind.  Runs on error and on
 * process exit while the launcher waits, so neither a slot nor a worker
 * outlives a launch that did not return a PID (dynbgw_slot_abandon()).
 */
static void
dynbgw_abandon_launch(int code, Datum arg)
{
	DynbgwLaunch *launch = (DynbgwLaunch *) DatumGetPointer(arg);
	DynbgwAfter after;

	dynbgw_slot_abandon(launch->n, launch->generation, &after);

	/* The file is this launch's alone, and a failed launch needs none. */
	after.forget_file = launch->saved;

	/* Keeps the postmaster from starting it, or stops it if it runs. */
	if (launch->handle != NULL)
	{
		after.end_registration = true;
		after.have_handle = true;
		memcpy(&after.handle, launch->handle, sizeof(DynbgwHandle));
	}
	dynbgw_after_unlock(&after);
}

/*
 * Register the worker with the postmaster.  When all background worker
 * slots are taken, retry until the deadline: nothing tells us when one is
 * freed, so poll at a modest rate.
 */
static void
dynbgw_register(DynbgwLaunch *launch, int restart_s, TimestampTz deadline)
{
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
		DynbgwOccupant occupant;
		long		remaining_ms;

		dynbgw_slot_look(launch->n, &occupant);
		if (occupant.stop_requested)
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
	dynbgw_slot_registered(launch->n, launch->generation, launch->handle);
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
 * A worker that went before it was ready: the launch fails, with the
 * worker's own error if it reported one.
 */
static void
dynbgw_launch_failed(int n, const DynbgwSettled *settled)
{
	if (settled->stopped)
		dynbgw_launch_stopped(n);
	if (settled->error[0] != '\0')
		ereport(ERROR,
				(errcode(settled->error_code),
				 errmsg("dynbgw worker %d failed to start", n),
				 errdetail_internal("%s",
									dynbgw_text_for_session(settled->error,
															settled->error_encoding))));
	ereport(ERROR,
			(errcode(ERRCODE_SYSTEM_ERROR),
			 errmsg("dynbgw worker %d exited before it was ready", n),
			 errhint("The server log may say why.")));
}

/*
 * Wait until the worker is connected and ready, and return its PID.  The
 * worker sets our latch when it is ready or exits, and so does the
 * postmaster when the process stops, also one that never ran our code;
 * dynbgw_slot_settle() says what came of it.  A worker that was ready and
 * is already gone did start: its PID is returned all the same.  A worker
 * that waits for a lock of ours would wait for ever: every
 * deadlock_timeout, look whether that is so.
 */
static int
dynbgw_wait_until_ready(DynbgwLaunch *launch)
{
	for (;;)
	{
		BgwHandleStatus status;
		pid_t		bgpid = 0;
		DynbgwSettled settled;
		DynbgwAfter after;
		int			rc;

		/* Ask first: once it reports the process stopped, the slot is final. */
		status = GetBackgroundWorkerPid(launch->handle, &bgpid);
		switch (dynbgw_slot_settle(launch->n, launch->generation,
								   status == BGWH_STOPPED, &settled, &after))
		{
			case DYNBGW_LAUNCH_WAITING:
				break;
			case DYNBGW_LAUNCH_READY:
				return settled.ready_pid;
			case DYNBGW_LAUNCH_GONE:
				dynbgw_after_unlock(&after);
				if (settled.ready_pid != 0)
					return settled.ready_pid;
				dynbgw_launch_failed(launch->n, &settled);
				break;
			case DYNBGW_LAUNCH_LOST:
				dynbgw_launch_stopped(launch->n);
				break;
		}

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

/*
 * Number n is held by another launch (occupant): decide what to do as
 * if_running says.  Returns true with *pid for 'skip'; false once the
 * number may be free, to try again.  A launch or a stop in progress
 * elsewhere finishes before we decide, within the time a replace gives a
 * worker to stop.
 */
static bool
dynbgw_handle_occupant(int n, const DynbgwOccupant *occupant,
					   DynbgwIfRunning if_running, int *pid)
{
	if (if_running == DYNBGW_IF_RUNNING_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("dynbgw worker %d is already running", n),
				 occupant->pid != 0 ?
				 errdetail("Its PID is %d.", occupant->pid) :
				 errdetail("Its state is \"%s\".",
						   dynbgw_state_name(occupant->state)),
				 errhint("Stop it first, choose another number, or use if_running => 'skip' or 'replace'.")));

	if (occupant->state == DYNBGW_STARTING ||
		occupant->state == DYNBGW_EXITED ||
		occupant->state == DYNBGW_STOPPING)
	{
		if (!dynbgw_wait_slot(n, occupant->generation, occupant->pid,
							  occupant->state != DYNBGW_STOPPING,
							  TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  DYNBGW_REPLACE_TIMEOUT_MS)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("dynbgw worker %d is still \"%s\"", n,
							dynbgw_state_name(occupant->state)),
					 errdetail("It did not leave that state within %d seconds.",
							   DYNBGW_REPLACE_TIMEOUT_MS / 1000),
					 errhint("Try again later, or stop it with dynbgw_stop(n => %d).", n)));
		return false;
	}
	if (if_running == DYNBGW_IF_RUNNING_SKIP)
	{
		/* waiting to be restarted: no PID to give */
		*pid = occupant->pid;
		return true;
	}

	dynbgw_check_may_signal(n, occupant, "stop");
	if (!dynbgw_stop_slot(n, occupant->generation,
						  TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  DYNBGW_REPLACE_TIMEOUT_MS)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("could not replace dynbgw worker %d", n),
				 errdetail("Its PID %d did not stop within %d seconds.",
						   occupant->pid, DYNBGW_REPLACE_TIMEOUT_MS / 1000)));
	return false;
}

/*
 * Reserve number n for the definition, once it is free and the limits
 * leave room.  A lack of headroom may pass, like a lack of background
 * worker slots: until slot_deadline, try again.  False with *pid for
 * if_running => 'skip'.
 */
static bool
dynbgw_reserve(DynbgwLaunch *launch, const DynbgwDefinition *def,
			   DynbgwIfRunning if_running, TimestampTz slot_deadline, int *pid)
{
	for (;;)
	{
		DynbgwLimits limits;
		DynbgwLimit exceeded;
		DynbgwOccupant occupant;

		/* Counted anew at each try: sessions come and go, settings change. */
		dynbgw_limits_prepare(&limits, def);
		launch->launched_at = GetCurrentTimestamp();
		launch->generation = dynbgw_slot_reserve(launch->n, def, &limits,
												 launch->launched_at,
												 &exceeded, &occupant);
		if (launch->generation != 0)
			return true;
		if (exceeded == DYNBGW_LIMIT_NONE)
		{
			if (dynbgw_handle_occupant(launch->n, &occupant, if_running, pid))
				return false;
			continue;
		}
		if (exceeded != DYNBGW_LIMIT_HEADROOM ||
			GetCurrentTimestamp() >= slot_deadline)
			dynbgw_limit_error(&limits, exceeded);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, dynbgw_wait_event(DYNBGW_WAIT_LAUNCH));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Whether the launch holds its number still and has not ended. */
static bool
dynbgw_launch_live(const DynbgwLaunch *launch, DynbgwOccupant *occupant)
{
	dynbgw_slot_look(launch->n, occupant);
	return occupant->generation == launch->generation &&
		occupant->state != DYNBGW_FREE;
}

/*
 * Launch worker n with this definition and return its PID once it is
 * ready; with if_running => 'skip', the PID of the worker that holds n
 * (0 if it waits for a restart).  persist, if not NULL, is the call whose
 * arguments dynbgw_persist_save() keeps.  On any error nothing stays
 * behind.
 */
int
dynbgw_launch_worker(int n, const DynbgwDefinition *def,
					 DynbgwIfRunning if_running, int64 wait_for_slot_us,
					 FunctionCallInfo persist)
{
	DynbgwLaunch launch;
	DynbgwOccupant occupant;
	TimestampTz slot_deadline = GetCurrentTimestamp() + wait_for_slot_us;
	int			pid;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot launch dynbgw workers during recovery"),
				 errhint("Launch workers on the primary.")));

	/* A launch to be refused for a kept result stops no worker first. */
	if (if_running == DYNBGW_IF_RUNNING_REPLACE)
		dynbgw_result_check_launch(n, PG_UINT64_MAX);

	launch.n = n;
	launch.saved = false;
	launch.handle = NULL;
	if (!dynbgw_reserve(&launch, def, if_running, slot_deadline, &pid))
		return pid;

	PG_ENSURE_ERROR_CLEANUP(dynbgw_abandon_launch, PointerGetDatum(&launch));
	{
		DynbgwResultKey key = {n, 0};

		/* What the number's launches before kept goes once this one runs. */
		dynbgw_result_check_launch(n, launch.generation);
		/* Saved once the number is ours, so that a skip saves nothing. */
		if (persist != NULL)
			dynbgw_persist_save(persist, n, def);
		dynbgw_register(&launch, def->restart_s, slot_deadline);
		pid = dynbgw_wait_until_ready(&launch);
		(void) dynbgw_result_drop(&key, launch.generation, 0);

		/*
		 * Only a launch that succeeds leaves a file for a crash-restart to
		 * bring its worker back from: a worker restarted without one exits.
		 * A launch that has ended by now (its runs done, or stopped) needs
		 * none, and is not failed by an error writing one: whatever ended it
		 * removed the file before it was written, or the launch finds it
		 * ended once it is written.
		 */
		if (def->restart_s != BGW_NEVER_RESTART &&
			dynbgw_launch_live(&launch, &occupant))
		{
			launch.saved = true;
			dynbgw_save_worker(n, launch.generation, launch.launched_at, def);
			if (!dynbgw_launch_live(&launch, &occupant))
				dynbgw_forget_worker(n, launch.generation);
		}
	}
	PG_END_ENSURE_ERROR_CLEANUP(dynbgw_abandon_launch, PointerGetDatum(&launch));

	return pid;
}

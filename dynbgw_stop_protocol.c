/*-------------------------------------------------------------------------
 *
 * dynbgw_stop_protocol.c
 *		How any session stops a worker and waits until it is gone.
 *
 * A stop marks the launch stopped and signals its process under the
 * registry lock (dynbgw_slot_request_stop()), ends its registration with
 * the postmaster so that nothing restarts it, then waits for the worker to
 * leave its slot and for the postmaster to reap it, so that a launch right
 * after the stop finds both the number and a background worker slot free.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

/*
 * Who may stop worker n, or wake it (action): the same rules as
 * pg_terminate_backend, superuser workers only by superusers, others by
 * members of their role or of pg_signal_backend.  The role that launched a
 * worker may too, even when it has since lost the role, or the role was
 * dropped.
 */
void
dynbgw_check_may_signal(int n, const DynbgwOccupant *occupant,
						const char *action)
{
	if (superuser())
		return;
	if (superuser_arg(occupant->roleoid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s dynbgw worker %d", action, n),
				 errdetail("Only superusers may %s a worker that runs as a superuser.",
						   action)));
	if (!has_privs_of_role(GetUserId(), occupant->roleoid) &&
		!has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND) &&
		GetUserId() != occupant->launcher_roleoid)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s dynbgw worker %d", action, n),
				 errdetail("Only the role that launched it and roles with the privileges of its role or of \"pg_signal_backend\" may %s it.",
						   action)));
}

/*
 * Whether the current user may stop what runs as roleoid on behalf of who
 * (a pool's maker, a task's submitter): the rules above, who in place of
 * the launcher.
 */
bool
dynbgw_may_stop_for(Oid roleoid, Oid who)
{
	if (superuser())
		return true;
	if (superuser_arg(roleoid))
		return false;
	return GetUserId() == who ||
		has_privs_of_role(GetUserId(), roleoid) ||
		has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND);
}

/*
 * Wait until worker n's slot has moved on from what we saw
 * (dynbgw_slot_moved_on()), or the deadline passes.
 */
bool
dynbgw_wait_slot(int n, uint64 generation, int pid, bool launch_decided,
				 TimestampTz deadline)
{
	ConditionVariable *cv = dynbgw_slot_cv(n);
	bool		moved_on = false;

	ConditionVariablePrepareToSleep(cv);
	for (;;)
	{
		long		remaining_ms;

		moved_on = dynbgw_slot_moved_on(n, generation, pid, launch_decided);
		if (moved_on)
			break;

		remaining_ms = dynbgw_ms_until(deadline);
		if (remaining_ms <= 0 ||
			ConditionVariableTimedSleep(cv, remaining_ms,
										dynbgw_wait_event(launch_decided ?
														  DYNBGW_WAIT_LAUNCH :
														  DYNBGW_WAIT_STOP)))
			break;
	}
	ConditionVariableCancelSleep();
	return moved_on;
}

/*
 * Wait until the process of a stopped worker, which has left its slot, is
 * gone.  Only the rest of its exit and the postmaster's reaping, which
 * frees the background worker slot for the next launch, remain: that takes
 * microseconds.  Watched through the registration, which a reused PID
 * cannot fake; a worker brought back by a crash-restart has a handle once
 * it is ready, and without one the PID is all there is.
 */
static bool
dynbgw_wait_reaped(int n, uint64 generation, int pid, DynbgwAfter *stop,
				   TimestampTz deadline)
{
	pid_t		ignored_pid;

	if (!stop->have_handle)
		stop->have_handle = dynbgw_slot_handle(n, generation, &stop->handle);
	while (stop->have_handle ?
		   GetBackgroundWorkerPid((BackgroundWorkerHandle *) &stop->handle,
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
 * Stop the worker in slot n, if it is still the given generation, and wait
 * until it is gone.  False if it did not go before the deadline.  A worker
 * waiting to be restarted is simply forgotten; a launch still in progress
 * is left for its launcher to give up.
 */
bool
dynbgw_stop_slot(int n, uint64 generation, TimestampTz deadline)
{
	DynbgwOccupant was;
	DynbgwAfter after;

	if (!dynbgw_slot_request_stop(n, generation, &was, &after))
		return true;
	dynbgw_after_unlock(&after);

	/* Gone already: the launcher still waiting now knows it was stopped. */
	if (was.state == DYNBGW_RESTARTING || was.state == DYNBGW_EXITED)
		return true;
	if (!dynbgw_wait_slot(n, generation, was.pid, false, deadline))
		return false;
	return dynbgw_wait_reaped(n, generation, was.pid, &after, deadline);
}

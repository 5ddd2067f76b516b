/*-------------------------------------------------------------------------
 *
 * dynbgw_wake.c
 *		dynbgw_wake(): a worker's next run starts now, at commit.
 *
 * A wake is kept until the top-level transaction that asked for it commits,
 * as NOTIFY is, and dropped if it or the subtransaction that asked for it
 * aborts: a trigger on a queue table can wake the queue's worker, and the
 * run it starts sees the rows that woke it.  Outside a transaction block
 * the statement's own commit comes right after the call.  The wake itself
 * is a flag in the worker's slot and a latch (dynbgw_slot_wake()): a few
 * hundred nanoseconds at commit, and nothing to do before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_wake);

/* A wake that waits for its transaction's commit. */
typedef struct DynbgwPendingWake
{
	int			n;
	uint64		generation;		/* the launch it wakes, and no later one */
	int			nest_level;		/* of the subtransaction that asked */
} DynbgwPendingWake;

/* This transaction's wakes, in TopTransactionContext; one a number at most. */
static List *pending_wakes = NIL;
static bool callbacks_registered = false;

/* Wake each launch of pending_wakes that still runs.  Raises no error. */
static void
dynbgw_wake_pending(void)
{
	ListCell   *lc;

	foreach(lc, pending_wakes)
	{
		DynbgwPendingWake *wake = lfirst(lc);

		(void) dynbgw_slot_wake(wake->n, wake->generation);
	}
}

static void
dynbgw_wake_xact_callback(XactEvent event, void *arg)
{
	if (pending_wakes == NIL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			/* As NOTIFY: a prepared transaction commits in another session. */
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot PREPARE a transaction that has woken a dynbgw worker")));
			break;
		case XACT_EVENT_COMMIT:
			dynbgw_wake_pending();
			pending_wakes = NIL;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			pending_wakes = NIL;
			break;
		default:
			break;
	}
}

/*
 * A subtransaction's wakes become its parent's when it commits, and are
 * dropped when it aborts.
 */
static void
dynbgw_wake_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, pending_wakes)
	{
		DynbgwPendingWake *wake = lfirst(lc);

		if (wake->nest_level < level)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			wake->nest_level = level - 1;
		else
		{
			pending_wakes = foreach_delete_current(pending_wakes, lc);
			pfree(wake);
		}
	}
}

/*
 * Keep a wake of launch generation of worker n for the commit, unless one
 * is kept already: the one kept by this or an enclosing transaction level
 * goes at least as far.  One kept for an earlier launch of n is dropped,
 * since that launch has ended: so the list has one entry a number at most.
 */
static void
dynbgw_wake_at_commit(int n, uint64 generation)
{
	ListCell   *lc;
	DynbgwPendingWake *wake;
	MemoryContext oldcontext;

	foreach(lc, pending_wakes)
	{
		wake = lfirst(lc);
		if (wake->n != n)
			continue;
		if (wake->generation == generation)
			return;
		pending_wakes = foreach_delete_current(pending_wakes, lc);
		pfree(wake);
	}
	if (!callbacks_registered)
	{
		RegisterXactCallback(dynbgw_wake_xact_callback, NULL);
		RegisterSubXactCallback(dynbgw_wake_subxact_callback, NULL);
		callbacks_registered = true;
	}
	oldcontext = MemoryContextSwitchTo(TopTransactionContext);
	wake = palloc(sizeof(DynbgwPendingWake));
	wake->n = n;
	wake->generation = generation;
	wake->nest_level = GetCurrentTransactionNestLevel();
	pending_wakes = lappend(pending_wakes, wake);
	MemoryContextSwitchTo(oldcontext);
}

/*
 * dynbgw_wake(n) returns boolean
 *
 * Worker n's next run starts as soon as the current transaction commits,
 * not at its due time; its schedule is unchanged.  False, with a notice,
 * if n has no worker that is starting, idle or running: a wake starts no
 * worker.  Who may stop a worker may wake it.
 */
Datum
dynbgw_wake(PG_FUNCTION_ARGS)
{
	int			n = dynbgw_number_arg(fcinfo, 0, false);
	DynbgwOccupant occupant;

	/* As NOTIFY: a parallel worker's commit is not its transaction's. */
	if (IsParallelWorker())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot wake a dynbgw worker from a parallel worker")));
	dynbgw_slot_look(n, &occupant);
	if (occupant.state != DYNBGW_FREE)
		dynbgw_check_may_signal(n, &occupant, "wake");
	if (!dynbgw_state_wakeable(occupant.state, occupant.stop_requested))
	{
		ereport(NOTICE,
				(errmsg("dynbgw worker %d is not running", n),
				 occupant.state == DYNBGW_FREE ? 0 :
				 errdetail("It is \"%s\"; a wake starts no worker.",
						   dynbgw_state_name(occupant.stop_requested ?
											 DYNBGW_STOPPING : occupant.state))));
		PG_RETURN_BOOL(false);
	}
	if (occupant.kind != DYNBGW_KIND_SQL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("dynbgw worker %d runs a library's entry point", n),
				 errdetail("Only workers launched with dynbgw_launch() have runs to start.")));
	dynbgw_wake_at_commit(n, occupant.generation);
	PG_RETURN_BOOL(true);
}

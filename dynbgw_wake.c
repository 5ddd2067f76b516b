/*-------------------------------------------------------------------------
 *
 * dynbgw_wake.c
 *		dynbgw_wake(): a worker's next run starts now, at commit.
 *
 * A wake is kept until the top-level transaction that asked for it commits,
 * as NOTIFY is, and dropped if it or the subtransaction that asked for it
 * aborts (dynbgw_at_commit.c): a trigger on a queue table can wake the queue's worker, and the
 * run it starts sees the rows that woke it.  Outside a transaction block
 * the statement's own commit comes right after the call.  The wake itself
 * is a flag in the worker's slot and a latch (dynbgw_slot_wake()): a few
 * hundred nanoseconds at commit, and nothing to do before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "fmgr.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_wake);

/* A wake, at commit, of the launch it was asked for, and no later one. */
static void
dynbgw_wake_end(const DynbgwAtCommit *wake, bool commit)
{
	if (commit)
		(void) dynbgw_slot_wake((int) wake->object, wake->item);
}

/* Wakes: of a worker number's launch, one a number at most. */
static const DynbgwAtCommitKind dynbgw_wake_kind = {
	.prepare_refused = "cannot PREPARE a transaction that has woken a dynbgw worker",
	.one_per_object = true,
	.end = dynbgw_wake_end
};

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
	dynbgw_at_commit(&dynbgw_wake_kind, (uint64) n, occupant.generation);
	PG_RETURN_BOOL(true);
}

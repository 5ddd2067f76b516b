/*-------------------------------------------------------------------------
 *
 * dynbgw_at_commit.c
 *		What a transaction asks of dynbgw to happen when it commits: a
 *		worker's wake (dynbgw_wake.c), a pool's task queued
 *		(dynbgw_task.c).
 *
 * As NOTIFY's notifications, each request is kept until the top-level
 * transaction commits, with the nest level of the subtransaction that made
 * it: a subtransaction's requests become its parent's when it commits,
 * and end, not carried out, when it aborts, as all do when the transaction
 * aborts.  PREPARE TRANSACTION is refused, since a prepared transaction
 * commits in another session.  Each kind of request says what its end
 * does, at commit and otherwise; an end raises no error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "dynbgw.h"

/* This transaction's requests, in TopTransactionContext, in their order. */
static List *requests = NIL;
static bool callbacks_registered = false;

static void
dynbgw_at_commit_end_all(bool commit)
{
	ListCell   *lc;

	foreach(lc, requests)
	{
		DynbgwAtCommit *request = lfirst(lc);

		request->kind->end(request, commit);
	}
	requests = NIL;
}

static void
dynbgw_at_commit_xact_callback(XactEvent event, void *arg)
{
	if (requests == NIL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s",
							((DynbgwAtCommit *) linitial(requests))->kind->prepare_refused)));
			break;
		case XACT_EVENT_COMMIT:
			dynbgw_at_commit_end_all(true);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			dynbgw_at_commit_end_all(false);
			break;
		default:
			break;
	}
}

static void
dynbgw_at_commit_subxact_callback(SubXactEvent event,
								  SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	foreach(lc, requests)
	{
		DynbgwAtCommit *request = lfirst(lc);

		if (request->nest_level < level)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			request->nest_level = level - 1;
		else
		{
			request->kind->end(request, false);
			requests = foreach_delete_current(requests, lc);
			pfree(request);
		}
	}
}

/*
 * Keep a request of this kind about object (a worker number, a pool) and
 * item (a launch's generation, a task) for the commit.  Of a kind that
 * keeps one per object, a request kept already for the same item, by this
 * or an enclosing transaction level, goes at least as far, and one for
 * another item (a launch that has ended) is dropped, not carried out.
 */
void
dynbgw_at_commit(const DynbgwAtCommitKind *kind, uint64 object, uint64 item)
{
	ListCell   *lc;
	DynbgwAtCommit *request;
	MemoryContext oldcontext;

	foreach(lc, requests)
	{
		request = lfirst(lc);
		if (!kind->one_per_object || request->kind != kind ||
			request->object != object)
			continue;
		if (request->item == item)
			return;
		requests = foreach_delete_current(requests, lc);
		pfree(request);
	}
	if (!callbacks_registered)
	{
		RegisterXactCallback(dynbgw_at_commit_xact_callback, NULL);
		RegisterSubXactCallback(dynbgw_at_commit_subxact_callback, NULL);
		callbacks_registered = true;
	}
	oldcontext = MemoryContextSwitchTo(TopTransactionContext);
	request = palloc(sizeof(DynbgwAtCommit));
	request->kind = kind;
	request->object = object;
	request->item = item;
	request->nest_level = GetCurrentTransactionNestLevel();
	requests = lappend(requests, request);
	MemoryContextSwitchTo(oldcontext);
}

/* Whether this transaction keeps a request of this kind about item. */
bool
dynbgw_at_commit_holds(const DynbgwAtCommitKind *kind, uint64 item)
{
	ListCell   *lc;

	foreach(lc, requests)
	{
		DynbgwAtCommit *request = lfirst(lc);

		if (request->kind == kind && request->item == item)
			return true;
	}
	return false;
}

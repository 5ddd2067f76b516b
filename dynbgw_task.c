/*-------------------------------------------------------------------------
 *
 * dynbgw_task.c
 *		Tasks from SQL: dynbgw_submit(), dynbgw_wait_task(),
 *		dynbgw_cancel_task() and the view dynbgw_tasks.
 *
 * A task is one command for a pool's workers (dynbgw_pool.c) to run, as
 * the pool's role, so only those who may SET ROLE to that role submit
 * one; the worker checks again before it runs it.  A task submitted in a
 * transaction block is queued when the transaction commits, as a wake is
 * (dynbgw_at_commit.c): its place in the queue is taken at once, so a full
 * queue says so to the submitter, and given back if the transaction
 * aborts.  Outside a transaction block it is queued at once, so that the
 * statement that submits it may also wait for it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_submit);
PG_FUNCTION_INFO_V1(dynbgw_wait_task);
PG_FUNCTION_INFO_V1(dynbgw_cancel_task);
PG_FUNCTION_INFO_V1(dynbgw_tasks);

#define DYNBGW_TASKS_COLS	15
#define DYNBGW_TASKS_CHUNK	1024	/* tasks copied in one hold of the lock */

/* A task queued when its transaction commits, and gone otherwise. */
static void
dynbgw_task_end_pending(const DynbgwAtCommit *task, bool commit)
{
	dynbgw_task_settle(task->object, task->item, commit);
}

/* Tasks: of a pool, each its own. */
static const DynbgwAtCommitKind dynbgw_task_kind = {
	.prepare_refused = "cannot PREPARE a transaction that has submitted a dynbgw task",
	.one_per_object = false,
	.end = dynbgw_task_end_pending
};

/*
 * Queue a task, waiting until the deadline for room in a full queue.
 * Returns its id; an error if the queue stayed full or the pool went.
 */
static uint64
dynbgw_queue_task(const DynbgwPoolInfo *pool, const DynbgwTaskSpec *spec,
				  TimestampTz deadline)
{
	ConditionVariable *cv = dynbgw_tasks_cv();
	DynbgwQueueStatus status;
	uint64		id;

	for (;;)
	{
		long		remaining_ms;

		id = dynbgw_task_add(pool->id, spec, &status);
		remaining_ms = dynbgw_ms_until(deadline);
		if (status != DYNBGW_QUEUE_FULL || remaining_ms <= 0)
			break;
		(void) ConditionVariableTimedSleep(cv, remaining_ms,
										   dynbgw_wait_event(DYNBGW_WAIT_QUEUE));
	}
	ConditionVariableCancelSleep();

	if (status == DYNBGW_QUEUE_NO_POOL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dynbgw pool \"%s\" takes no more tasks", pool->name),
				 errdetail("It is being dropped, or failed: its workers lost the authority it was made with, or are all gone."),
				 errhint("The view dynbgw_pools says which; a failed pool is dropped and made anew.")));
	if (status == DYNBGW_QUEUE_FULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the queue of dynbgw pool \"%s\" is full", pool->name),
				 errdetail("%d tasks wait to run, as many as its queue_size.",
						   pool->queue_size),
				 errhint("Give wait_for_slot to wait for room in the queue.")));
	return id;
}

/*
 * dynbgw_submit(pool, command, keep_result, run_timeout, priority,
 *				 wait_for_slot) returns bigint
 *
 * Queue command for a worker of pool to run, as the pool's role, keeping
 * the rows of its last statement if asked, and return the task's id.
 * Tasks of higher priority run first, those of equal priority in the
 * order they were submitted.  In a transaction block the task is queued
 * when the transaction commits.
 */
Datum
dynbgw_submit(PG_FUNCTION_ARGS)
{
	char	   *name;
	DynbgwPoolInfo pool;
	DynbgwTaskSpec spec;
	TimestampTz deadline;
	uint64		id;
	AclResult	aclresult;

	/* As NOTIFY: a parallel worker's commit is not its transaction's. */
	if (IsParallelWorker())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot submit a dynbgw task from a parallel worker")));
	dynbgw_require(fcinfo, 0, "pool");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	dynbgw_pool_of_name(name, &pool);
	if (!dynbgw_may_submit(GetUserId(), pool.roleoid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to submit tasks to dynbgw pool \"%s\"",
						name),
				 errdetail("Its tasks run as role \"%s\"; only roles that may SET ROLE to it, and superusers, may submit them.",
						   GetUserNameFromId(pool.roleoid, false))));
	/* As a launch: who could not connect there runs nothing there. */
	aclresult = object_aclcheck(DatabaseRelationId, pool.dboid, GetUserId(),
								ACL_CONNECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_DATABASE,
					   get_database_name(pool.dboid));

	memset(&spec, 0, sizeof(spec));
	dynbgw_require(fcinfo, 1, "command");
	spec.command = dynbgw_command_text(PG_GETARG_TEXT_PP(1), pool.encoding);
	spec.submitter = GetUserId();
	spec.keep_result = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	spec.run_timeout_ms = dynbgw_run_timeout_arg(fcinfo, 3);
	spec.priority = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
	spec.pending = IsTransactionBlock();
	deadline = GetCurrentTimestamp() +
		dynbgw_interval_arg(fcinfo, 5, "wait_for_slot");

	id = dynbgw_queue_task(&pool, &spec, deadline);
	if (spec.pending)
		dynbgw_at_commit(&dynbgw_task_kind, pool.id, id);
	PG_RETURN_INT64((int64) id);
}

static const char *const dynbgw_task_state_names[] = {
	[DYNBGW_TASK_PENDING] = "queued",
	[DYNBGW_TASK_QUEUED] = "queued",
	[DYNBGW_TASK_RUNNING] = "running",
	[DYNBGW_TASK_ENDED] = "ended"
};


/*
 * Whether the caller may see all of a task: who may see what the pool's
 * workers do, and the role that submitted it.
 */
static bool
dynbgw_may_see_task(const DynbgwTaskRecord *record)
{
	return record->submitter == GetUserId() ||
		dynbgw_may_see(record->roleoid);
}

/* A task as a row of dynbgw_tasks. */
static void
dynbgw_put_task(ReturnSetInfo *rsinfo, const DynbgwTaskRecord *record)
{
	Datum		values[DYNBGW_TASKS_COLS];
	bool		nulls[DYNBGW_TASKS_COLS];
	char	   *rolename = GetUserNameFromId(record->roleoid, true);
	char	   *submitter = GetUserNameFromId(record->submitter, true);
	bool		ended = record->state == DYNBGW_TASK_ENDED;

	memset(nulls, true, sizeof(nulls));
	values[0] = Int64GetDatum((int64) record->id);
	/* Of a task whose record is gone, only how it ended is known. */
	values[1] = CStringGetTextDatum(record->pool);
	values[2] = CStringGetTextDatum(dynbgw_task_state_names[record->state]);
	values[3] = dynbgw_name_datum(rolename);
	nulls[0] = nulls[2] = false;
	nulls[1] = record->pool[0] == '\0';
	nulls[3] = rolename == NULL;
	if (dynbgw_may_see_task(record))
	{
		values[4] = dynbgw_name_datum(submitter);
		nulls[4] = submitter == NULL;
		values[5] = Int32GetDatum(record->priority);
		values[6] = TimestampTzGetDatum(record->submitted);
		nulls[5] = nulls[6] = record->submitted == 0;
		values[7] = TimestampTzGetDatum(record->started);
		nulls[7] = record->started == 0;
		values[8] = TimestampTzGetDatum(record->finished);
		values[9] = CStringGetTextDatum(dynbgw_run_status_name(record->outcome));
		nulls[8] = nulls[9] = !ended;
		if (record->error_code != 0)
		{
			values[10] = CStringGetTextDatum(unpack_sql_state(record->error_code));
			nulls[10] = false;
		}
		if (record->message[0] != '\0')
		{
			values[11] = CStringGetTextDatum(dynbgw_text_for_session(record->message,
																	 record->encoding));
			nulls[11] = false;
		}
		if (record->result[0] != '\0')
		{
			values[12] = CStringGetTextDatum(record->result);
			nulls[12] = false;
		}
		values[13] = Int32GetDatum(record->n);
		values[14] = Int32GetDatum(record->pid);
		nulls[13] = nulls[14] = record->n == 0;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* A task id argument. */
uint64
dynbgw_task_arg(FunctionCallInfo fcinfo, int argno)
{
	dynbgw_require(fcinfo, argno, "task id");
	if (PG_GETARG_INT64(argno) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("task id must be positive")));
	return (uint64) PG_GETARG_INT64(argno);
}

/* The task, found; an error if it is not known. */
static void
dynbgw_task_known(uint64 id, DynbgwTaskRecord *record)
{
	if (dynbgw_at_commit_holds(&dynbgw_task_kind, id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dynbgw task " UINT64_FORMAT " is queued when this transaction commits",
						id),
				 errhint("Wait for it, or cancel it, once the transaction has committed.")));
	if (!dynbgw_task_find(id, record))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("dynbgw task " UINT64_FORMAT " does not exist", id),
				 errdetail("No task of that id waits or runs, or ended among the last %d submitted.",
						   DYNBGW_TASK_OUTCOMES),
				 errhint("The view dynbgw_tasks lists the tasks that are known.")));
}

/*
 * dynbgw_wait_task(id, timeout) returns setof dynbgw_task
 *
 * Wait until task id has ended, or for at most timeout (NULL: for ever,
 * 0: just look), and return it as dynbgw_tasks shows it: its state says
 * whether it ended, its outcome how.
 */
Datum
dynbgw_wait_task(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		id = dynbgw_task_arg(fcinfo, 0);
	ConditionVariable *cv = dynbgw_tasks_cv();
	TimestampTz deadline = DT_NOEND;
	DynbgwTaskRecord record;

	if (!PG_ARGISNULL(1))
		deadline = GetCurrentTimestamp() +
			dynbgw_interval_arg(fcinfo, 1, "timeout");
	InitMaterializedSRF(fcinfo, 0);

	dynbgw_task_known(id, &record);
	ConditionVariablePrepareToSleep(cv);
	for (;;)
	{
		long		remaining_ms = dynbgw_ms_until(deadline);

		if (record.state == DYNBGW_TASK_ENDED || remaining_ms <= 0)
			break;
		(void) ConditionVariableTimedSleep(cv, remaining_ms,
										   dynbgw_wait_event(DYNBGW_WAIT_END));
		dynbgw_task_known(id, &record);
	}
	ConditionVariableCancelSleep();
	dynbgw_put_task(rsinfo, &record);
	return (Datum) 0;
}

/*
 * Who may cancel a task: the role that submitted it, and those who may
 * stop the pool's workers.
 */
static void
dynbgw_task_check_may_cancel(const DynbgwTaskRecord *record)
{
	if (!dynbgw_may_stop_for(record->roleoid, record->submitter))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to cancel dynbgw task " UINT64_FORMAT,
						record->id),
				 errdetail("Only the role that submitted it, roles with the privileges of its pool's role or of \"pg_signal_backend\", and superusers may cancel it.")));
}

/*
 * dynbgw_cancel_task(id) returns boolean
 *
 * A task that waits ends as cancelled; one that runs is cancelled as
 * pg_cancel_backend() cancels a query.  False, with a notice, if it has
 * ended.
 */
Datum
dynbgw_cancel_task(PG_FUNCTION_ARGS)
{
	uint64		id = dynbgw_task_arg(fcinfo, 0);
	DynbgwTaskRecord record;

	dynbgw_task_known(id, &record);
	dynbgw_task_check_may_cancel(&record);
	if (record.state == DYNBGW_TASK_ENDED || !dynbgw_task_cancel(id))
	{
		ereport(NOTICE,
				(errmsg("dynbgw task " UINT64_FORMAT " has ended", id)));
		PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}

/*
 * dynbgw_tasks() returns setof dynbgw_task
 *
 * The tasks that wait, run, or ended among the last dynbgw.history_size,
 * in that order; their details to those who may see them.
 */
Datum
dynbgw_tasks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwTaskRecord *chunk = palloc(DYNBGW_TASKS_CHUNK * sizeof(DynbgwTaskRecord));
	DynbgwTaskCursor cursor;
	MemoryContext rowcontext;
	int			count;

	InitMaterializedSRF(fcinfo, 0);
	memset(&cursor, 0, sizeof(cursor));
	rowcontext = AllocSetContextCreate(CurrentMemoryContext, "dynbgw_tasks row",
									   ALLOCSET_SMALL_SIZES);
	/* As dynbgw_runs: the same memory, however many tasks there are. */
	while ((count = dynbgw_task_list_next(&cursor, chunk,
										  DYNBGW_TASKS_CHUNK)) > 0)
	{
		for (int i = 0; i < count; i++)
		{
			MemoryContext oldcontext = MemoryContextSwitchTo(rowcontext);

			dynbgw_put_task(rsinfo, &chunk[i]);
			MemoryContextSwitchTo(oldcontext);
			MemoryContextReset(rowcontext);
		}
		CHECK_FOR_INTERRUPTS();
	}
	return (Datum) 0;
}

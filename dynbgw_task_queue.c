/*-------------------------------------------------------------------------
 *
 * dynbgw_task_queue.c
 *		Pools of workers and the queues of their tasks, in shared memory.
 *
 * A pool is an entry of the registry: its name, its definition and its
 * queue, an array of the tasks that wait, in a DSA area made on the first
 * pool.  Each worker number has a member entry too: the pool whose worker
 * holds the number, whether it waits for a task (its latch, set by the
 * submission that gives it one), and the task it runs.  A task that ends
 * goes to the history of ended tasks, a ring of dynbgw.history_size like
 * that of runs, and its memory is freed.
 *
 * One lock, the board's, guards pools, members, queues and history, and
 * is held for a few field copies and a pass over one queue, never for
 * catalog access.  A worker takes the task of highest priority, the
 * oldest among equals: a queue holds at most queue_size tasks, so the pass
 * is bounded, and far cheaper than the run it starts.  Whatever leaves a
 * queue or ends broadcasts the board's condition variable, on which
 * dynbgw_wait_task() and a submission waiting for room sleep.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/shmem.h"
#include "utils/dsa.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

int			dynbgw_max_queued_tasks = 10000;

typedef struct DynbgwPool
{
	DynbgwPoolInfo info;		/* info.id 0: a free entry */
	dsa_pointer queue;			/* dsa_pointer[info.queue_size], of which the
								 * first info.waiting are tasks, unordered */
} DynbgwPool;

/* What worker number n is to the pools: the member entry n - 1. */
typedef struct DynbgwMember
{
	uint64		pool_id;		/* 0: no pool's worker holds n */
	char		pool[NAMEDATALEN];
	Oid			roleoid;
	Oid			dboid;
	Latch	   *idle_latch;		/* set when it waits for a task */
	dsa_pointer task;			/* the task it runs */
} DynbgwMember;

/* A task that waits or runs. */
typedef struct DynbgwTask
{
	uint64		id;
	DynbgwTaskState state;
	Oid			submitter;
	int			priority;
	bool		keep_result;
	bool		cancel_requested;
	int			run_timeout_ms;
	int			n;				/* running: its worker */
	int			pid;
	TimestampTz submitted;
	TimestampTz started;
	char		command[FLEXIBLE_ARRAY_MEMBER];
} DynbgwTask;

/*
 * How the last DYNBGW_TASK_OUTCOMES tasks ended, by id, after their records
 * leave the history: so that a wait for a task that ended while many others
 * did still says how.
 */
typedef struct DynbgwTaskOutcome
{
	uint32		id;				/* low bits of the task's id; 0: none */
	Oid			roleoid;		/* the pool's, for who may see it */
	Oid			submitter;
	uint8		outcome;		/* DynbgwRunStatus + 1 */
} DynbgwTaskOutcome;

/* This process's mapping of the area, once it has one. */
static dsa_area *tasks_area = NULL;

static DynbgwTaskBoard *
dynbgw_board(void)
{
	return &dynbgw_registry()->tasks;
}

Size
dynbgw_registry_tail_size(int capacity, int history_size)
{
	Size		size = mul_size(capacity, MAXALIGN(sizeof(DynbgwPool)) +
								MAXALIGN(sizeof(DynbgwMember)));

	size = add_size(size, mul_size(history_size,
								   MAXALIGN(sizeof(DynbgwTaskRecord))));
	return add_size(size, mul_size(DYNBGW_TASK_OUTCOMES,
								   sizeof(DynbgwTaskOutcome)));
}

/*
 * The pools, then the members, then the history of ended tasks, then the
 * outcomes of the last tasks.
 */
static DynbgwPool *
dynbgw_pool_table(void)
{
	return (DynbgwPool *) dynbgw_registry_tail(dynbgw_registry());
}

static DynbgwMember *
dynbgw_members(void)
{
	return (DynbgwMember *) &dynbgw_pool_table()[dynbgw_reg->capacity];
}

static DynbgwTaskRecord *
dynbgw_ended_tasks(void)
{
	return (DynbgwTaskRecord *) &dynbgw_members()[dynbgw_reg->capacity];
}

static DynbgwTaskOutcome *
dynbgw_task_outcomes(void)
{
	return (DynbgwTaskOutcome *) &dynbgw_ended_tasks()[dynbgw_reg->history_size];
}

static dsa_area *
dynbgw_tasks_area(bool create)
{
	DynbgwTaskBoard *board = dynbgw_board();

	return dynbgw_area_map(&board->lock, &board->area, &tasks_area, create);
}

/*
 * Lock the board, with the area mapped first: a process that has not yet
 * used it (a session that only drops a pool) reads tasks there too.
 */
static void
dynbgw_lock_board(LWLockMode mode)
{
	(void) dynbgw_tasks_area(false);
	LWLockAcquire(&dynbgw_board()->lock, mode);
}

static void
dynbgw_unlock_board(void)
{
	LWLockRelease(&dynbgw_board()->lock);
}

ConditionVariable *
dynbgw_tasks_cv(void)
{
	return &dynbgw_board()->changed;
}

/* The pool of this name, or else of this id; NULL if none.  Locked. */
static DynbgwPool *
dynbgw_pool_locked(const char *name, uint64 id)
{
	DynbgwPool *pools = dynbgw_pool_table();

	for (int i = 0; i < dynbgw_reg->capacity; i++)
	{
		if (pools[i].info.id == 0)
			continue;
		if (name != NULL ? strcmp(pools[i].info.name, name) == 0 :
			pools[i].info.id == id)
			return &pools[i];
	}
	return NULL;
}

static DynbgwTask *
dynbgw_task_at(dsa_pointer task)
{
	return (DynbgwTask *) dsa_get_address(tasks_area, task);
}

static dsa_pointer *
dynbgw_queue_of(const DynbgwPool *pool)
{
	return (dsa_pointer *) dsa_get_address(tasks_area, pool->queue);
}

/*
 * Take the i-th task out of its pool's queue, moving the last one into
 * its place.  Locked exclusively.
 */
static dsa_pointer
dynbgw_queue_remove_locked(DynbgwPool *pool, int i)
{
	dsa_pointer *queue = dynbgw_queue_of(pool);
	dsa_pointer task = queue[i];

	queue[i] = queue[--pool->info.waiting];
	if (dynbgw_task_at(task)->state == DYNBGW_TASK_QUEUED)
		dynbgw_board()->queued--;
	return task;
}

/*
 * A worker of the pool that waits for a task, no longer counted as
 * waiting, whose latch the caller sets once the lock is released; NULL if
 * all are busy.  Locked exclusively.
 */
static Latch *
dynbgw_idle_worker_locked(uint64 pool_id)
{
	DynbgwMember *members = dynbgw_members();

	for (int i = 0; i < dynbgw_reg->capacity; i++)
	{
		if (members[i].pool_id == pool_id && members[i].idle_latch != NULL)
		{
			Latch	   *latch = members[i].idle_latch;

			members[i].idle_latch = NULL;
			return latch;
		}
	}
	return NULL;
}

/*
 * Keep an ended task in the history, and its outcome among the last
 * outcomes.  Returns the id of the task whose
 * record it overwrote if that one kept a result, which goes with its
 * record: the caller drops it once the lock is released.  Locked
 * exclusively.
 */
static uint64
dynbgw_record_end_locked(const DynbgwTaskRecord *record)
{
	DynbgwTaskBoard *board = dynbgw_board();
	DynbgwTaskRecord *slot;
	DynbgwTaskOutcome *outcome;
	uint64		overwritten = 0;

	outcome = &dynbgw_task_outcomes()[record->id % DYNBGW_TASK_OUTCOMES];
	outcome->id = (uint32) record->id;
	outcome->roleoid = record->roleoid;
	outcome->submitter = record->submitter;
	outcome->outcome = (uint8) record->outcome + 1;
	if (dynbgw_reg->history_size == 0)
		return record->keep_result ? record->id : 0;
	slot = &dynbgw_ended_tasks()[board->tasks_recorded++ %
								 dynbgw_reg->history_size];
	if (slot->id != 0 && slot->keep_result)
		overwritten = slot->id;
	*slot = *record;
	return overwritten;
}

/* A record of a task as it stands, its pool's details from the pool. */
static void
dynbgw_task_record(const DynbgwTask *task, const char *pool, Oid roleoid,
				   Oid dboid, DynbgwTaskRecord *record)
{
	memset(record, 0, sizeof(*record));
	record->id = task->id;
	record->state = task->state;
	strlcpy(record->pool, pool, NAMEDATALEN);
	record->roleoid = roleoid;
	record->dboid = dboid;
	record->submitter = task->submitter;
	record->priority = task->priority;
	record->keep_result = task->keep_result;
	record->n = task->n;
	record->pid = task->pid;
	record->submitted = task->submitted;
	record->started = task->started;
}

/* The result a task kept, once its record is gone. */
static void
dynbgw_task_drop_result(uint64 id)
{
	DynbgwResultKey key = {0, id};

	if (id != 0)
		(void) dynbgw_result_drop(&key, 0, 0);
}

/* ---- pools ---- */

/*
 * Add a pool: pool->id 0 for a new one, else one that a crash-restart lost
 * and its worker remakes.  Returns its id, with status DONE.  If a pool of
 * this name exists, status is EXISTS, and it is copied into *pool and its
 * id returned.  Else 0, and status TOO_MANY: no entry is free, or FULL:
 * the queues would hold more than dynbgw.max_queued_tasks.
 */
uint64
dynbgw_pool_add(DynbgwPoolInfo *pool, DynbgwQueueStatus *status)
{
	DynbgwTaskBoard *board = dynbgw_board();
	dsa_area   *area = dynbgw_tasks_area(true);
	dsa_pointer queue;
	DynbgwPool *pools = dynbgw_pool_table();
	DynbgwPool *entry = NULL;
	int64		queues = 0;
	uint64		id = 0;

	queue = dsa_allocate_extended(area, pool->queue_size * sizeof(dsa_pointer),
								  DSA_ALLOC_NO_OOM | DSA_ALLOC_HUGE);
	if (!DsaPointerIsValid(queue))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of shared memory for a dynbgw pool")));

	*status = DYNBGW_QUEUE_TOO_MANY;
	dynbgw_lock_board(LW_EXCLUSIVE);
	for (int i = 0; i < dynbgw_reg->capacity; i++)
	{
		if (pools[i].info.id == 0)
		{
			if (entry == NULL)
				entry = &pools[i];
			continue;
		}
		if (strcmp(pools[i].info.name, pool->name) == 0)
		{
			*pool = pools[i].info;
			id = pool->id;
			*status = DYNBGW_QUEUE_EXISTS;
			entry = NULL;
			break;
		}
		queues += pools[i].info.queue_size;
	}
	/* A pool brought back was within the bound when it was made. */
	if (id == 0 && entry != NULL && pool->id == 0 &&
		queues + pool->queue_size > dynbgw_max_queued_tasks)
		*status = DYNBGW_QUEUE_FULL;
	else if (id == 0 && entry != NULL)
	{
		id = pool->id != 0 ? pool->id : ++board->last_pool;
		entry->info = *pool;
		entry->info.id = id;
		entry->info.dropping = false;
		entry->info.waiting = 0;
		entry->queue = queue;
		*status = DYNBGW_QUEUE_DONE;
		pool->id = id;
		queue = InvalidDsaPointer;
	}
	dynbgw_unlock_board();
	if (DsaPointerIsValid(queue))
		dsa_free(area, queue);
	return id;
}

/* The pool of this name (or, name NULL, of this id), copied; false if none. */
bool
dynbgw_pool_get(const char *name, uint64 id, DynbgwPoolInfo *pool)
{
	DynbgwPool *entry;

	dynbgw_lock_board(LW_SHARED);
	entry = dynbgw_pool_locked(name, id);
	if (entry != NULL)
		*pool = entry->info;
	dynbgw_unlock_board();
	return entry != NULL;
}

/* Every pool, copied in one hold of the lock. */
DynbgwPoolInfo *
dynbgw_pool_list(int *count)
{
	DynbgwPool *pools = dynbgw_pool_table();
	DynbgwPoolInfo *infos = palloc(dynbgw_registry()->capacity *
								   sizeof(DynbgwPoolInfo));

	*count = 0;
	dynbgw_lock_board(LW_SHARED);
	for (int i = 0; i < dynbgw_reg->capacity; i++)
	{
		if (pools[i].info.id != 0)
			infos[(*count)++] = pools[i].info;
	}
	dynbgw_unlock_board();
	return infos;
}

/*
 * A pool that is being dropped (edata NULL), or whose workers lost their
 * authority (edata the error that says so), takes no more tasks, and those
 * that wait end as stopped, or as failed with that error; those pending in
 * open transactions just go.
 */
void
dynbgw_pool_close(uint64 id, const ErrorData *edata)
{
	DynbgwPoolInfo info;
	DynbgwPool *pool;
	dsa_pointer *freed;
	uint64	   *dropped;
	int			nfreed = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (!dynbgw_pool_get(NULL, id, &info))
		return;
	/* Room for what may wait, which its queue's size bounds. */
	freed = palloc(info.queue_size * sizeof(dsa_pointer));
	dropped = palloc0(info.queue_size * sizeof(uint64));
	dynbgw_lock_board(LW_EXCLUSIVE);
	pool = dynbgw_pool_locked(NULL, id);
	/* A drop has ended the tasks already, as stopped. */
	if (pool != NULL && !(edata != NULL && pool->info.dropping))
	{
		if (edata == NULL)
			pool->info.dropping = true;
		else
			pool->info.failed = true;
		while (pool->info.waiting > 0)
		{
			dsa_pointer ptr = dynbgw_queue_remove_locked(pool, 0);
			DynbgwTask *task = dynbgw_task_at(ptr);

			if (task->state == DYNBGW_TASK_QUEUED)
			{
				DynbgwTaskRecord record;

				dynbgw_task_record(task, pool->info.name, pool->info.roleoid,
								   pool->info.dboid, &record);
				record.state = DYNBGW_TASK_ENDED;
				record.outcome = edata ? DYNBGW_RUN_FAILED : DYNBGW_RUN_STOPPED;
				record.finished = now;
				if (edata != NULL)
				{
					record.error_code = edata->sqlerrcode;
					record.encoding = GetDatabaseEncoding();
					dynbgw_clip(record.message, edata->message,
								DYNBGW_MAX_RUN_ERROR);
				}
				dropped[nfreed] = dynbgw_record_end_locked(&record);
			}
			freed[nfreed++] = ptr;
		}
	}
	dynbgw_unlock_board();
	for (int i = 0; i < nfreed; i++)
	{
		dsa_free(tasks_area, freed[i]);
		dynbgw_task_drop_result(dropped[i]);
	}
	ConditionVariableBroadcast(dynbgw_tasks_cv());
}

/* The pool is gone: its entry and its queue, emptied by the drain. */
void
dynbgw_pool_remove(uint64 id)
{
	DynbgwPool *pool;
	dsa_pointer queue = InvalidDsaPointer;

	dynbgw_lock_board(LW_EXCLUSIVE);
	pool = dynbgw_pool_locked(NULL, id);
	if (pool != NULL && pool->info.waiting == 0)
	{
		queue = pool->queue;
		memset(pool, 0, sizeof(*pool));
	}
	dynbgw_unlock_board();
	if (DsaPointerIsValid(queue))
		dsa_free(tasks_area, queue);
}

/* ---- tasks ---- */

/*
 * Queue a task for the pool, or (spec->pending) keep its place until its
 * transaction ends (dynbgw_task_settle()).  Returns its id, or 0 with
 * status saying why not: the queue is full, or the pool is gone or being
 * dropped.  A queued task goes to a waiting worker of the pool at once.
 */
uint64
dynbgw_task_add(uint64 pool_id, const DynbgwTaskSpec *spec,
				DynbgwQueueStatus *status)
{
	dsa_area   *area = dynbgw_tasks_area(true);
	Size		len = strlen(spec->command);
	dsa_pointer ptr;
	DynbgwTask *task;
	DynbgwPool *pool;
	Latch	   *latch = NULL;
	uint64		id = 0;

	ptr = dsa_allocate_extended(area, offsetof(DynbgwTask, command) + len + 1,
								DSA_ALLOC_NO_OOM);
	if (!DsaPointerIsValid(ptr))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of shared memory for dynbgw tasks")));
	task = dynbgw_task_at(ptr);
	memset(task, 0, offsetof(DynbgwTask, command));
	task->state = spec->pending ? DYNBGW_TASK_PENDING : DYNBGW_TASK_QUEUED;
	task->submitter = spec->submitter;
	task->priority = spec->priority;
	task->keep_result = spec->keep_result;
	task->run_timeout_ms = spec->run_timeout_ms;
	task->submitted = GetCurrentTimestamp();
	memcpy(task->command, spec->command, len + 1);

	dynbgw_lock_board(LW_EXCLUSIVE);
	pool = dynbgw_pool_locked(NULL, pool_id);
	if (pool == NULL || (pool->info.dropping || pool->info.failed))
		*status = DYNBGW_QUEUE_NO_POOL;
	else if (pool->info.waiting >= pool->info.queue_size)
		*status = DYNBGW_QUEUE_FULL;
	else
	{
		id = task->id = ++dynbgw_board()->last_task;
		dynbgw_queue_of(pool)[pool->info.waiting++] = ptr;
		if (!spec->pending)
		{
			dynbgw_board()->queued++;
			latch = dynbgw_idle_worker_locked(pool_id);
		}
		*status = DYNBGW_QUEUE_DONE;
	}
	dynbgw_unlock_board();
	if (id == 0)
		dsa_free(area, ptr);
	if (latch != NULL)
		SetLatch(latch);
	return id;
}

/*
 * The transaction that submitted a pending task ends: the task is queued
 * if it committed, and goes if not.  Raises no error: called at commit.
 */
void
dynbgw_task_settle(uint64 pool_id, uint64 id, bool commit)
{
	DynbgwPool *pool;
	dsa_pointer freed = InvalidDsaPointer;
	Latch	   *latch = NULL;

	dynbgw_lock_board(LW_EXCLUSIVE);
	pool = dynbgw_pool_locked(NULL, pool_id);
	for (int i = 0; pool != NULL && i < pool->info.waiting; i++)
	{
		DynbgwTask *task = dynbgw_task_at(dynbgw_queue_of(pool)[i]);

		if (task->id != id || task->state != DYNBGW_TASK_PENDING)
			continue;
		if (commit)
		{
			task->state = DYNBGW_TASK_QUEUED;
			dynbgw_board()->queued++;
			latch = dynbgw_idle_worker_locked(pool_id);
		}
		else
			freed = dynbgw_queue_remove_locked(pool, i);
		break;
	}
	dynbgw_unlock_board();
	if (latch != NULL)
		SetLatch(latch);
	if (DsaPointerIsValid(freed))
	{
		dsa_free(tasks_area, freed);
		ConditionVariableBroadcast(dynbgw_tasks_cv());
	}
}

/*
 * Find a task: waiting, running, in the history, or only its outcome once
 * its record has left the history.  False if none: it never existed, or
 * ended before the last DYNBGW_TASK_OUTCOMES tasks were submitted, or its
 * transaction has yet to commit (the submitter knows it as its own).
 */
bool
dynbgw_task_find(uint64 id, DynbgwTaskRecord *record)
{
	DynbgwPool *pools = dynbgw_pool_table();
	DynbgwMember *members = dynbgw_members();
	DynbgwTaskRecord *ended = dynbgw_ended_tasks();
	bool		found = false;

	dynbgw_lock_board(LW_SHARED);
	for (int i = 0; i < dynbgw_reg->history_size && !found; i++)
	{
		if (ended[i].id == id)
		{
			*record = ended[i];
			found = true;
		}
	}
	for (int i = 0; i < dynbgw_reg->capacity && !found; i++)
	{
		DynbgwPool *pool = &pools[i];
		DynbgwMember *member = &members[i];

		for (int j = 0; pool->info.id != 0 && j < pool->info.waiting; j++)
		{
			DynbgwTask *task = dynbgw_task_at(dynbgw_queue_of(pool)[j]);

			if (task->id != id || task->state == DYNBGW_TASK_PENDING)
				continue;
			dynbgw_task_record(task, pool->info.name, pool->info.roleoid,
							   pool->info.dboid, record);
			found = true;
			break;
		}
		if (!found && DsaPointerIsValid(member->task) &&
			dynbgw_task_at(member->task)->id == id)
		{
			dynbgw_task_record(dynbgw_task_at(member->task), member->pool,
							   member->roleoid, member->dboid, record);
			found = true;
		}
	}
	if (!found && id <= dynbgw_board()->last_task &&
		dynbgw_board()->last_task - id < DYNBGW_TASK_OUTCOMES)
	{
		DynbgwTaskOutcome *outcome = &dynbgw_task_outcomes()[id % DYNBGW_TASK_OUTCOMES];

		/* Only how it ended is left: the rest of the record is gone. */
		if (outcome->outcome != 0 && outcome->id == (uint32) id)
		{
			memset(record, 0, sizeof(*record));
			record->id = id;
			record->state = DYNBGW_TASK_ENDED;
			record->roleoid = outcome->roleoid;
			record->submitter = outcome->submitter;
			record->outcome = (DynbgwRunStatus) (outcome->outcome - 1);
			found = true;
		}
	}
	dynbgw_unlock_board();
	return found;
}

/*
 * The next tasks from *cursor (zeroed to begin): those that wait (pending
 * ones, which may yet go, left out), then those that run, then those in the
 * history, oldest first; at most max of them into records, copied in one
 * hold of the lock, so that long queues and a large history do not keep
 * workers waiting for it, nor take the caller's memory all at once.
 * Returns how many; 0 at the end.  Tasks that move meanwhile may be missed
 * or seen twice, as between two reads of a view.
 */
int
dynbgw_task_list_next(DynbgwTaskCursor *cursor, DynbgwTaskRecord *records,
					  int max)
{
	DynbgwTaskBoard *board = dynbgw_board();
	DynbgwPool *pools = dynbgw_pool_table();
	DynbgwMember *members = dynbgw_members();
	DynbgwTaskRecord *ended = dynbgw_ended_tasks();
	int			capacity = dynbgw_registry()->capacity;
	int			count = 0;
	uint64		first_kept;

	dynbgw_lock_board(LW_SHARED);
	for (; cursor->pool < capacity && count < max; cursor->pool++)
	{
		DynbgwPool *pool = &pools[cursor->pool];

		for (; pool->info.id != 0 && cursor->position < pool->info.waiting &&
			 count < max; cursor->position++)
		{
			DynbgwTask *task = dynbgw_task_at(dynbgw_queue_of(pool)[cursor->position]);

			if (task->state == DYNBGW_TASK_QUEUED)
				dynbgw_task_record(task, pool->info.name, pool->info.roleoid,
								   pool->info.dboid, &records[count++]);
		}
		if (count == max)
			break;
		cursor->position = 0;
	}
	for (; cursor->pool == capacity && cursor->member < capacity &&
		 count < max; cursor->member++)
	{
		DynbgwMember *member = &members[cursor->member];

		if (DsaPointerIsValid(member->task))
			dynbgw_task_record(dynbgw_task_at(member->task), member->pool,
							   member->roleoid, member->dboid,
							   &records[count++]);
	}
	first_kept = board->tasks_recorded -
		Min(board->tasks_recorded, (uint64) dynbgw_reg->history_size);
	if (cursor->member == capacity && !cursor->in_history)
	{
		cursor->in_history = true;
		cursor->ended = first_kept;
	}
	if (cursor->in_history)
	{
		/* Records overwritten since the last call are gone. */
		cursor->ended = Max(cursor->ended, first_kept);
		for (; cursor->ended < board->tasks_recorded && count < max;
			 cursor->ended++)
			records[count++] = ended[cursor->ended % dynbgw_reg->history_size];
	}
	dynbgw_unlock_board();
	return count;
}

/*
 * Cancel a task: one that waits ends as cancelled, one that runs is sent
 * a cancel, with the lock held, so that it reaches the worker while it
 * runs this task.  False if it neither waits nor runs.
 */
bool
dynbgw_task_cancel(uint64 id)
{
	DynbgwPool *pools = dynbgw_pool_table();
	DynbgwMember *members = dynbgw_members();
	dsa_pointer freed = InvalidDsaPointer;
	uint64		dropped = 0;
	bool		done = false;

	dynbgw_lock_board(LW_EXCLUSIVE);
	for (int i = 0; i < dynbgw_reg->capacity && !done; i++)
	{
		DynbgwPool *pool = &pools[i];
		DynbgwMember *member = &members[i];

		for (int j = 0; pool->info.id != 0 && j < pool->info.waiting; j++)
		{
			DynbgwTask *task = dynbgw_task_at(dynbgw_queue_of(pool)[j]);
			DynbgwTaskRecord record;

			if (task->id != id || task->state != DYNBGW_TASK_QUEUED)
				continue;
			dynbgw_task_record(task, pool->info.name, pool->info.roleoid,
							   pool->info.dboid, &record);
			record.state = DYNBGW_TASK_ENDED;
			record.outcome = DYNBGW_RUN_CANCELLED;
			record.finished = GetCurrentTimestamp();
			dropped = dynbgw_record_end_locked(&record);
			freed = dynbgw_queue_remove_locked(pool, j);
			done = true;
			break;
		}
		if (!done && DsaPointerIsValid(member->task))
		{
			DynbgwTask *task = dynbgw_task_at(member->task);

			if (task->id == id)
			{
				task->cancel_requested = true;
				(void) kill(task->pid, SIGINT);
				done = true;
			}
		}
	}
	dynbgw_unlock_board();
	if (DsaPointerIsValid(freed))
	{
		dsa_free(tasks_area, freed);
		dynbgw_task_drop_result(dropped);
		ConditionVariableBroadcast(dynbgw_tasks_cv());
	}
	return done;
}

/* ---- a pool's worker ---- */

/*
 * Worker n joins its pool, remaking it if a crash-restart lost it: a pool
 * made before the registry was.  False if the pool is gone: it was
 * dropped, or its making failed.
 */
bool
dynbgw_pool_join(int n, const DynbgwDefinition *def)
{
	DynbgwTaskBoard *board = dynbgw_board();
	DynbgwMember *member;
	DynbgwPool *pool;

	(void) dynbgw_tasks_area(true);
	if (def->pool_id <= board->first_pool &&
		!dynbgw_pool_get(NULL, def->pool_id, &(DynbgwPoolInfo) {0}))
	{
		DynbgwPoolInfo info;
		DynbgwQueueStatus status;

		memset(&info, 0, sizeof(info));
		info.id = def->pool_id;
		strlcpy(info.name, def->pool_name, NAMEDATALEN);
		info.size = def->pool_size;
		info.queue_size = def->pool_queue_size;
		info.dboid = def->dboid;
		info.roleoid = def->roleoid;
		info.owner = def->launcher_roleoid;
		info.made_in = def->launch_dboid;
		info.encoding = def->encoding;
		(void) dynbgw_pool_add(&info, &status);
	}

	dynbgw_lock_board(LW_EXCLUSIVE);
	pool = dynbgw_pool_locked(NULL, def->pool_id);
	member = &dynbgw_members()[n - 1];
	if (pool != NULL && !(pool->info.dropping || pool->info.failed))
	{
		member->pool_id = def->pool_id;
		strlcpy(member->pool, pool->info.name, NAMEDATALEN);
		member->roleoid = pool->info.roleoid;
		member->dboid = pool->info.dboid;
		member->idle_latch = NULL;
		member->task = InvalidDsaPointer;
	}
	dynbgw_unlock_board();
	return pool != NULL && !(pool->info.dropping || pool->info.failed);
}

/*
 * Worker n takes the next task of its pool: the one of highest priority,
 * the first submitted among equals.  NOTHING if none waits: the worker is
 * then marked as waiting, and a submission sets its latch.  NO_POOL if the
 * pool is gone or being dropped.
 */
DynbgwQueueStatus
dynbgw_task_take(int n, DynbgwTaskTaken *taken)
{
	DynbgwMember *member = &dynbgw_members()[n - 1];
	DynbgwQueueStatus status = DYNBGW_QUEUE_NOTHING;
	DynbgwPool *pool;
	DynbgwTask *best = NULL;
	int			best_i = -1;

	dynbgw_lock_board(LW_EXCLUSIVE);
	pool = dynbgw_pool_locked(NULL, member->pool_id);
	if (pool == NULL || (pool->info.dropping || pool->info.failed))
	{
		member->idle_latch = NULL;
		dynbgw_unlock_board();
		return DYNBGW_QUEUE_NO_POOL;
	}
	for (int i = 0; i < pool->info.waiting; i++)
	{
		DynbgwTask *task = dynbgw_task_at(dynbgw_queue_of(pool)[i]);

		if (task->state != DYNBGW_TASK_QUEUED)
			continue;
		if (best == NULL || task->priority > best->priority ||
			(task->priority == best->priority && task->id < best->id))
		{
			best = task;
			best_i = i;
		}
	}
	if (best == NULL)
		member->idle_latch = MyLatch;
	else
	{
		member->idle_latch = NULL;
		member->task = dynbgw_queue_remove_locked(pool, best_i);
		best->state = DYNBGW_TASK_RUNNING;
		best->started = GetCurrentTimestamp();
		best->n = n;
		best->pid = MyProcPid;
		taken->id = best->id;
		taken->submitter = best->submitter;
		taken->keep_result = best->keep_result;
		taken->run_timeout_ms = best->run_timeout_ms;
		strlcpy(taken->command, best->command, DYNBGW_MAX_COMMAND);
		status = DYNBGW_QUEUE_DONE;
	}
	dynbgw_unlock_board();
	if (status == DYNBGW_QUEUE_DONE)
		ConditionVariableBroadcast(dynbgw_tasks_cv());
	return status;
}

/*
 * The task worker n runs has ended: it goes to the history.  Raises no
 * error: called in the worker's exit callback too.
 */
void
dynbgw_task_end(int n, DynbgwRunStatus outcome, int error_code,
				const char *message, const char *result)
{
	DynbgwMember *member = &dynbgw_members()[n - 1];
	DynbgwTaskRecord record;
	dsa_pointer task;
	uint64		dropped;

	dynbgw_lock_board(LW_EXCLUSIVE);
	task = member->task;
	if (!DsaPointerIsValid(task))
	{
		dynbgw_unlock_board();
		return;
	}
	dynbgw_task_record(dynbgw_task_at(task), member->pool, member->roleoid,
					   member->dboid, &record);
	record.state = DYNBGW_TASK_ENDED;
	record.outcome = outcome;
	record.finished = GetCurrentTimestamp();
	record.error_code = error_code;
	record.encoding = GetDatabaseEncoding();
	if (message != NULL)
		dynbgw_clip(record.message, message, DYNBGW_MAX_RUN_ERROR);
	if (result != NULL)
		strlcpy(record.result, result, DYNBGW_MAX_RESULT);
	dropped = dynbgw_record_end_locked(&record);
	member->task = InvalidDsaPointer;
	dynbgw_unlock_board();

	dsa_free(tasks_area, task);
	dynbgw_task_drop_result(dropped);
	ConditionVariableBroadcast(dynbgw_tasks_cv());
}

/*
 * Worker n leaves its pool, after ending the task it ran, if any.  A
 * submission may have woken it for a task it will not take now: another
 * waiting worker of the pool is woken in its place.
 */
void
dynbgw_pool_leave(int n)
{
	DynbgwMember *member = &dynbgw_members()[n - 1];
	DynbgwPool *pool;
	Latch	   *latch = NULL;

	dynbgw_lock_board(LW_EXCLUSIVE);
	Assert(!DsaPointerIsValid(member->task));
	pool = dynbgw_pool_locked(NULL, member->pool_id);
	memset(member, 0, sizeof(*member));
	for (int i = 0; pool != NULL && i < pool->info.waiting; i++)
	{
		if (dynbgw_task_at(dynbgw_queue_of(pool)[i])->state == DYNBGW_TASK_QUEUED)
		{
			latch = dynbgw_idle_worker_locked(pool->info.id);
			break;
		}
	}
	dynbgw_unlock_board();
	if (latch != NULL)
		SetLatch(latch);
}

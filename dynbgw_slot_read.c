/*-------------------------------------------------------------------------
 *
 * dynbgw_slot_read.c
 *		What the rest of dynbgw reads of the registry.
 *
 * Each reader takes the registry lock shared, copies what its caller needs
 * and releases it: the caller looks names up, allocates and raises errors
 * afterwards.  Nothing here writes a slot; every change of one is a
 * transition of dynbgw_slot.c, which shares the helpers whose names end in
 * "locked": they are called with the lock held.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/condition_variable.h"

#include "dynbgw.h"

const char *
dynbgw_state_name(DynbgwState state)
{
	switch (state)
	{
		case DYNBGW_STARTING:
		case DYNBGW_EXITED:		/* its launcher has yet to decide */
			return "starting";
		case DYNBGW_IDLE:
			return "idle";
		case DYNBGW_RUNNING:
			return "running";
		case DYNBGW_STOPPING:
			return "stopping";
		case DYNBGW_RESTARTING:
			return "restarting";
		case DYNBGW_FREE:
			break;
	}
	return NULL;
}

/* Who holds a slot.  Called with the registry lock held. */
void
dynbgw_occupant_locked(const DynbgwSlot *slot, DynbgwOccupant *occupant)
{
	occupant->generation = slot->generation;
	occupant->state = slot->state;
	occupant->kind = slot->def.kind;
	occupant->pid = slot->pid;
	occupant->roleoid = slot->def.roleoid;
	occupant->launcher_roleoid = slot->def.launcher_roleoid;
	occupant->stop_requested = slot->stop_requested;
	occupant->have_handle = slot->have_handle;
	occupant->launcher_waits = slot->launcher_latch != NULL;
}

/*
 * Which limit a new worker would pass, counting the workers that have a
 * slot (but not slot exclude_n, a worker's own) and the sessions counted
 * beforehand.  Called with the registry lock held.
 */
DynbgwLimit
dynbgw_count_limits_locked(const DynbgwLimits *limits, int exclude_n)
{
	int			by_role = 0;
	int			by_database = 0;
	int			unprivileged = 0;

	for (int i = 0; i < dynbgw_reg->capacity; i++)
	{
		const DynbgwDefinition *def = &dynbgw_reg->slots[i].def;

		if (dynbgw_reg->slots[i].state == DYNBGW_FREE || i + 1 == exclude_n)
			continue;
		by_role += def->roleoid == limits->roleoid;
		by_database += def->dboid == limits->dboid;
		unprivileged += def->unprivileged;
	}
	if (limits->role_limit >= 0 &&
		limits->role_sessions + by_role >= limits->role_limit)
		return DYNBGW_LIMIT_ROLE;
	if (limits->db_limit >= 0 &&
		limits->db_sessions + by_database >= limits->db_limit)
		return DYNBGW_LIMIT_DATABASE;
	if (limits->unprivileged && unprivileged >= limits->unprivileged_max)
		return DYNBGW_LIMIT_HEADROOM;
	return DYNBGW_LIMIT_NONE;
}

/* The condition variable broadcast whenever slot n's launch moves on. */
ConditionVariable *
dynbgw_slot_cv(int n)
{
	return &dynbgw_slot_at(n)->state_cv;
}

/* What slot n holds, free or not. */
void
dynbgw_slot_look(int n, DynbgwOccupant *occupant)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);

	dynbgw_lock(LW_SHARED);
	dynbgw_occupant_locked(slot, occupant);
	dynbgw_unlock();
}

/*
 * The launches of a pool's workers: their numbers and generations, from
 * the highest number down; returns how many, at most the registry's
 * capacity.
 */
int
dynbgw_slot_pool_workers(uint64 pool_id, int *numbers, uint64 *generations)
{
	int			count = 0;

	dynbgw_lock(LW_SHARED);
	for (int n = dynbgw_reg->capacity; n >= 1; n--)
	{
		DynbgwSlot *slot = dynbgw_slot_at(n);

		if (slot->state != DYNBGW_FREE && slot->def.pool_id == pool_id)
		{
			numbers[count] = n;
			generations[count++] = slot->generation;
		}
	}
	dynbgw_unlock();
	return count;
}

/* Who holds number n; false if nobody. */
bool
dynbgw_slot_occupant(int n, DynbgwOccupant *occupant)
{
	dynbgw_slot_look(n, occupant);
	return occupant->state != DYNBGW_FREE;
}

/*
 * The number of the worker whose process is pid, or 0, with who holds it;
 * *was_ours if a worker that had that PID left the registry.
 */
int
dynbgw_slot_find_pid(int pid, DynbgwOccupant *occupant, bool *was_ours)
{
	int			n = 0;

	*was_ours = false;
	(void) dynbgw_registry();
	dynbgw_lock(LW_SHARED);
	for (int i = 0; i < dynbgw_reg->capacity; i++)
	{
		DynbgwSlot *slot = &dynbgw_reg->slots[i];

		if (slot->pid == pid)
		{
			n = i + 1;
			dynbgw_occupant_locked(slot, occupant);
		}
		else if (slot->last_pid == pid)
			*was_ours = true;
	}
	dynbgw_unlock();
	return n;
}

/*
 * Copy slot n, all but its condition variable, if it holds a launch; false
 * if it is free.
 */
bool
dynbgw_slot_copy(int n, DynbgwSlot *copy)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	bool		held;

	dynbgw_lock(LW_SHARED);
	held = slot->state != DYNBGW_FREE;
	if (held)
		memcpy(copy, slot, offsetof(DynbgwSlot, state_cv));
	dynbgw_unlock();
	return held;
}

/*
 * The handle of the registration of slot n's launch of this generation,
 * once the slot has it.
 */
bool
dynbgw_slot_handle(int n, uint64 generation, DynbgwHandle *handle)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	bool		have;

	dynbgw_lock(LW_SHARED);
	have = slot->generation == generation && slot->have_handle;
	if (have)
		*handle = slot->bgw_handle;
	dynbgw_unlock();
	return have;
}

/*
 * Whether the worker holding slot n has a wake to take.  Read without the
 * lock, in the worker's sleep loop: the waker sets the flag before the
 * latch, and the worker looks after resetting it.
 */
bool
dynbgw_slot_woken(int n)
{
	return pg_atomic_read_u32(&dynbgw_slot_at(n)->wake_pending) != 0;
}

/*
 * Whether slot n has moved on from what a waiter saw: another launch holds
 * it, or, with launch_decided, the launch of this generation has succeeded
 * or failed, or else its process pid has left it (with pid 0: the launch
 * that had none was given up).
 */
bool
dynbgw_slot_moved_on(int n, uint64 generation, int pid, bool launch_decided)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	bool		moved_on;

	dynbgw_lock(LW_SHARED);
	if (slot->generation != generation)
		moved_on = true;
	else if (launch_decided)
		moved_on = slot->state != DYNBGW_STARTING &&
			slot->state != DYNBGW_EXITED;
	else if (pid != 0)
		moved_on = slot->pid != pid;
	else
		moved_on = slot->state == DYNBGW_FREE;
	dynbgw_unlock();
	return moved_on;
}

/*
 * How the launch of slot n that a waiter waits for stands: *waited is its
 * generation, 0 until the waiter has seen one.  Fills *ending with how it
 * ended, or how far it got; without any launch, how the last one ended.
 */
DynbgwEndStatus
dynbgw_slot_ending(int n, uint64 *waited, DynbgwEnding *ending)
{
	DynbgwSlot *slot = dynbgw_slot_at(n);
	DynbgwEndStatus status = DYNBGW_END_NOT_YET;
	bool		ended;

	dynbgw_lock(LW_SHARED);
	if (slot->state != DYNBGW_FREE && *waited == 0)
		*waited = slot->generation;
	ended = slot->state == DYNBGW_FREE ||
		(slot->ended.generation >= *waited && slot->ended.generation != 0);
	if (ended && *waited != 0 && slot->ended.generation != *waited &&
		slot->ended_before.generation != *waited)
		status = DYNBGW_END_LOST;
	else if (ended)
	{
		*ending = *waited != 0 && slot->ended_before.generation == *waited ?
			slot->ended_before : slot->ended;
		status = DYNBGW_END_KNOWN;
	}
	else
	{
		/* Between two processes of a restart, the last one. */
		dynbgw_ending_locked(slot, DYNBGW_OUTCOME_NONE,
							 slot->pid != 0 ? slot->pid : slot->last_pid, 0,
							 ending);
	}
	dynbgw_unlock();
	return status;
}

/*
 * Which limit a worker of slot exclude_n would now exceed, counting the
 * other workers, as its launch did (dynbgw_slot_reserve()).
 */
DynbgwLimit
dynbgw_slot_limits(const DynbgwLimits *limits, int exclude_n)
{
	DynbgwLimit exceeded;

	(void) dynbgw_registry();
	dynbgw_lock(LW_SHARED);
	exceeded = dynbgw_count_limits_locked(limits, exclude_n);
	dynbgw_unlock();
	return exceeded;
}

/*
 * The runs the history holds: the index of the oldest, and how many.
 */
uint64
dynbgw_history_span(int *count)
{
	uint64		first;

	(void) dynbgw_registry();
	dynbgw_lock(LW_SHARED);
	*count = (int) Min(dynbgw_reg->runs_recorded,
					   (uint64) dynbgw_reg->history_size);
	first = dynbgw_reg->runs_recorded - *count;
	dynbgw_unlock();
	return first;
}

/*
 * Copy the runs of indexes from to to - 1 into runs, in one hold of the
 * lock, leaving out those overwritten since; returns how many it copied.
 */
int
dynbgw_history_copy(uint64 from, uint64 to, DynbgwRun *runs)
{
	int			copied = 0;

	dynbgw_lock(LW_SHARED);
	for (uint64 i = from; i < to; i++)
	{
		if (dynbgw_reg->runs_recorded - i > (uint64) dynbgw_reg->history_size)
			continue;
		runs[copied++] = dynbgw_history(dynbgw_reg)[i % dynbgw_reg->history_size];
	}
	dynbgw_unlock();
	return copied;
}

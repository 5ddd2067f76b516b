/*-------------------------------------------------------------------------
 *
 * dynbgw_registry.c
 *		The registry of workers that every dynbgw process shares: where it
 *		lives, and how a process finds or creates it.
 *
 * The registry is one dynamic shared memory segment whose handle is kept in
 * a tiny struct in the main shared memory segment (from 17, in the server's
 * registry of named segments), so any backend finds it without the library
 * being preloaded; docs/design.md explains the choice.  It is an array of
 * slots, one per worker number, guarded by one LWLock, followed by the
 * history of runs; dynbgw_slot.c is the only file that takes the lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

int			dynbgw_max_workers = 8;
int			dynbgw_history_size = 1000;

/* This process's mapping of the registry, once found. */
DynbgwRegistry *dynbgw_reg = NULL;

/*
 * Up to 16: the main shared memory segment only has room for what was
 * reserved at server start, plus a little slack.  The slack is enough for
 * this anchor, which just says where the registry's own segment is.
 */
typedef struct DynbgwAnchor
{
	dsm_handle	registry_handle;
} DynbgwAnchor;

/* The shape the settings ask for, for a registry made now. */
static void
dynbgw_shape_from_settings(DynbgwShape *shape)
{
	shape->capacity = dynbgw_max_workers;
	shape->history_size = dynbgw_history_size;
}

static Size
dynbgw_registry_size(const DynbgwShape *shape)
{
	Size		size = offsetof(DynbgwRegistry, slots);

	size = add_size(size, mul_size(shape->capacity, sizeof(DynbgwSlot)));
	size = add_size(size, mul_size(shape->history_size, sizeof(DynbgwRun)));
	return add_size(size, dynbgw_registry_tail_size(shape->capacity,
													shape->history_size));
}

/* Fill in a new registry (ptr) of the given shape (arg). */
static void
dynbgw_registry_init(void *ptr, void *arg)
{
	DynbgwRegistry *reg = ptr;
	const DynbgwShape *shape = arg;

	memset(reg, 0, dynbgw_registry_size(shape));
	reg->magic = DYNBGW_REGISTRY_MAGIC;
	reg->slot_size = sizeof(DynbgwSlot);
	reg->tranche_id = dynbgw_new_tranche("dynbgw");
	LWLockInitialize(&reg->lock, reg->tranche_id);
	LWLockInitialize(&reg->results.lock, reg->tranche_id);
	LWLockInitialize(&reg->tasks.lock, reg->tranche_id);
	ConditionVariableInit(&reg->tasks.changed);
	reg->capacity = shape->capacity;
	reg->history_size = shape->history_size;

	/*
	 * Generations stay unique across crash-restarts, which keep workers, and
	 * so do the ids of pools, which keep theirs, and of tasks, which a waiter
	 * must not mistake.
	 */
	reg->last_generation = GetCurrentTimestamp();
	reg->tasks.first_pool = reg->last_generation;
	reg->tasks.last_pool = reg->last_generation;
	reg->tasks.last_task = reg->last_generation;
	for (int i = 0; i < shape->capacity; i++)
	{
		ConditionVariableInit(&reg->slots[i].state_cv);
		pg_atomic_init_u32(&reg->slots[i].wake_pending, 0);
	}
}

/* The history ring of the last runs, right after the slots. */
DynbgwRun *
dynbgw_history(DynbgwRegistry *reg)
{
	return (DynbgwRun *) &reg->slots[reg->capacity];
}

/* What follows the history: the pools and tasks of dynbgw_task_queue.c. */
void *
dynbgw_registry_tail(DynbgwRegistry *reg)
{
	return &dynbgw_history(reg)[reg->history_size];
}

/*
 * This process's mapping (*mapping) of a DSA area whose anchor the lock
 * guards.  If none exists, it is made when create is true, and NULL is
 * returned otherwise.  Made or mapped, it lasts as long as the server, or
 * the process.
 */
dsa_area *
dynbgw_area_map(LWLock *lock, DynbgwAreaAnchor *anchor, dsa_area **mapping,
				bool create)
{
	MemoryContext oldcontext;

	if (*mapping != NULL)
		return *mapping;

	/* The mapping's bookkeeping lasts as long as the process. */
	oldcontext = MemoryContextSwitchTo(TopMemoryContext);
	LWLockAcquire(lock, LW_EXCLUSIVE);
	if (anchor->made)
		*mapping = dsa_attach(anchor->handle);
	else if (create)
	{
		*mapping = dsa_create(dynbgw_registry()->tranche_id);
		dsa_pin(*mapping);
		anchor->handle = dsa_get_handle(*mapping);
		anchor->made = true;
	}
	if (*mapping != NULL)
		dsa_pin_mapping(*mapping);
	LWLockRelease(lock);
	MemoryContextSwitchTo(oldcontext);
	return *mapping;
}

#ifdef DYNBGW_HAVE_NAMED_DSM
/*
 * From 17 the registry is a segment of the server's own registry of named
 * segments.  GetNamedDSMSegment() errors unless every caller asks for the
 * size the segment was created with, but ours follows dynbgw.max_workers
 * and dynbgw.history_size, which a reload may change without a restart.  So
 * the first process also fixes the shape, in a tiny named segment of its
 * own, and every process sizes the registry from that, as on 16 they read
 * it from the registry.  (Always sizing it for the largest settings would
 * waste tens of megabytes.)
 */
static void
dynbgw_shape_init(void *ptr, void *arg)
{
	dynbgw_shape_from_settings(ptr);
}
#endif

/*
 * Find the registry, creating it if this is the first process since the
 * server (re)started to need it.  A crash-restart reinitializes the main
 * segment and destroys every dynamic one, so the registry never outlives the
 * workers it describes.
 */
DynbgwRegistry *
dynbgw_registry(void)
{
#ifndef DYNBGW_HAVE_NAMED_DSM
	DynbgwAnchor *anchor;
	dsm_segment *seg;
#endif
	DynbgwShape shape;
	bool		found;
	bool		created = false;

	if (dynbgw_reg != NULL)
		return dynbgw_reg;

#ifdef DYNBGW_HAVE_NAMED_DSM
	shape = *(DynbgwShape *) dynbgw_named_segment("dynbgw_shape",
												  sizeof(DynbgwShape),
												  dynbgw_shape_init, &found, NULL);
	dynbgw_reg = dynbgw_named_segment("dynbgw", dynbgw_registry_size(&shape),
									  dynbgw_registry_init, &found, &shape);
	created = !found;
#else
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	anchor = ShmemInitStruct("dynbgw", sizeof(DynbgwAnchor), &found);
	if (!found)
		anchor->registry_handle = DSM_HANDLE_INVALID;

	if (anchor->registry_handle == DSM_HANDLE_INVALID)
	{
		dynbgw_shape_from_settings(&shape);
		seg = dsm_create(dynbgw_registry_size(&shape), 0);
		dynbgw_registry_init(dsm_segment_address(seg), &shape);
		dsm_pin_segment(seg);
		anchor->registry_handle = dsm_segment_handle(seg);
		created = true;
	}
	else
	{
		seg = dsm_attach(anchor->registry_handle);
		if (seg == NULL)
			elog(ERROR, "could not map the dynbgw registry");
	}
	dsm_pin_mapping(seg);
	LWLockRelease(AddinShmemInitLock);

	dynbgw_reg = dsm_segment_address(seg);
#endif
	if (dynbgw_reg->magic != DYNBGW_REGISTRY_MAGIC ||
		dynbgw_reg->slot_size != sizeof(DynbgwSlot))
	{
		dynbgw_reg = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the dynbgw registry was made by another version of dynbgw"),
				 errhint("Restart the server after installing a new version of dynbgw.")));
	}
	dynbgw_name_tranche(dynbgw_reg->tranche_id, "dynbgw");

	/*
	 * Files are read and removed outside the lock the registry was made
	 * under.  Only files of an earlier server life go, so a launch that
	 * saved one meanwhile keeps it.
	 */
	if (created)
		dynbgw_remove_stale_saved();
	return dynbgw_reg;
}

/*
 * How much of a message fits in size bytes with its terminator, cut at a
 * character boundary of this database's encoding.
 */
int
dynbgw_clip_length(const char *message, int size)
{
	return pg_mbcliplen(message, strlen(message), size - 1);
}

/* Copy as much of a message as fits in size bytes. */
void
dynbgw_clip(char *dest, const char *message, int size)
{
	int			len = dynbgw_clip_length(message, size);

	memcpy(dest, message, len);
	dest[len] = '\0';
}

/*-------------------------------------------------------------------------
 *
 * dynbgw_compat.c
 *		The differences between server versions that take code or a
 *		variable, not just a macro (see dynbgw_compat.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pgstat.h"
#include "storage/lwlock.h"

#include "dynbgw.h"

/*
 * The wait event of each of dynbgw's waits: from 17 a custom one, named
 * server-wide, which each process looks up once; before, "Extension".
 */
uint32
dynbgw_wait_event(DynbgwWaitEvent event)
{
#if PG_VERSION_NUM >= 170000
	static const char *const names[] = {
		[DYNBGW_WAIT_NAP] = "DynbgwNap",
		[DYNBGW_WAIT_LAUNCH] = "DynbgwLaunch",
		[DYNBGW_WAIT_STOP] = "DynbgwStop",
		[DYNBGW_WAIT_END] = "DynbgwWait",
		[DYNBGW_WAIT_QUEUE] = "DynbgwQueue"
	};
	static uint32 ids[lengthof(names)];

	if (ids[event] == 0)
		ids[event] = WaitEventExtensionNew(names[event]);
	return ids[event];
#else
	return PG_WAIT_EXTENSION;
#endif
}

/*
 * A new LWLock tranche.  From 19 the server keeps its name; before, every
 * process that shows the lock names the tranche itself
 * (dynbgw_name_tranche()).
 */
int
dynbgw_new_tranche(const char *name)
{
#if PG_VERSION_NUM >= 190000
	return LWLockNewTrancheId(name);
#else
	return LWLockNewTrancheId();
#endif
}

void
dynbgw_name_tranche(int tranche_id, const char *name)
{
#if PG_VERSION_NUM < 190000
	LWLockRegisterTranche(tranche_id, name);
#endif
}

#ifdef DYNBGW_HAVE_NAMED_DSM
#if PG_VERSION_NUM < 190000
/* 17 and 18 pass no argument: it waits here for the duration of the call. */
static void (*named_init) (void *ptr, void *arg);
static void *named_init_arg;

static void
dynbgw_named_init_with_arg(void *ptr)
{
	named_init(ptr, named_init_arg);
}
#endif

/* A named segment of the server's registry, its initializer given arg. */
void *
dynbgw_named_segment(const char *name, size_t size,
					 void (*init) (void *ptr, void *arg), bool *found,
					 void *arg)
{
#if PG_VERSION_NUM >= 190000
	return GetNamedDSMSegment(name, size, init, found, arg);
#else
	named_init = init;
	named_init_arg = arg;
	return GetNamedDSMSegment(name, size, dynbgw_named_init_with_arg, found);
#endif
}
#endif

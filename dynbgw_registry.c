/*-------------------------------------------------------------------------
 *
 * dynbgw_registry.c
 *		The registry of workers that every dynbgw process shares, and the
 *		files that keep restartable workers' definitions.
 *
 * The registry is one dynamic shared memory segment whose handle is kept in
 * a tiny struct in the main shared memory segment (from 17, in the server's
 * registry of named segments), so any backend finds it without the library
 * being preloaded; docs/design.md explains the choice.  It is an array of
 * slots, one per worker number, guarded by one LWLock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/dsm.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

int			dynbgw_max_workers = 8;

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

static void dynbgw_remove_stale_saved(void);

static Size
dynbgw_registry_size(int capacity)
{
	return add_size(offsetof(DynbgwRegistry, slots),
					mul_size(capacity, sizeof(DynbgwSlot)));
}

static void
dynbgw_registry_init(DynbgwRegistry *reg, int capacity)
{
	memset(reg, 0, dynbgw_registry_size(capacity));
	reg->magic = DYNBGW_REGISTRY_MAGIC;
	reg->slot_size = sizeof(DynbgwSlot);
	reg->tranche_id = LWLockNewTrancheId();
	LWLockInitialize(&reg->lock, reg->tranche_id);
	reg->capacity = capacity;
	/* Generations stay unique across crash-restarts, which keep workers. */
	reg->last_generation = GetCurrentTimestamp();
	for (int i = 0; i < capacity; i++)
		ConditionVariableInit(&reg->slots[i].state_cv);
	dynbgw_remove_stale_saved();
}

#ifdef DYNBGW_HAVE_NAMED_DSM
/*
 * From 17 the registry is a segment of the server's own registry of named
 * segments.  GetNamedDSMSegment() errors unless every caller asks for the
 * size the segment was created with, but ours follows dynbgw.max_workers,
 * which a reload may change without a restart.  So the first process also
 * fixes the capacity, in a tiny named segment of its own, and every process
 * sizes the registry from that, as on 16 they read it from the registry.
 * (Always sizing it for DYNBGW_MAX_WORKERS_LIMIT would waste about 10 MB.)
 */
static int	dynbgw_new_capacity;

static void
dynbgw_capacity_init(void *ptr)
{
	*(int *) ptr = dynbgw_max_workers;
}

static void
dynbgw_registry_init_callback(void *ptr)
{
	dynbgw_registry_init(ptr, dynbgw_new_capacity);
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
	bool		found;

	if (dynbgw_reg != NULL)
		return dynbgw_reg;

#ifdef DYNBGW_HAVE_NAMED_DSM
	dynbgw_new_capacity = *(int *) GetNamedDSMSegment("dynbgw_capacity",
													  sizeof(int),
													  dynbgw_capacity_init,
													  &found);
	dynbgw_reg = GetNamedDSMSegment("dynbgw",
									dynbgw_registry_size(dynbgw_new_capacity),
									dynbgw_registry_init_callback, &found);
#else
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	anchor = ShmemInitStruct("dynbgw", sizeof(DynbgwAnchor), &found);
	if (!found)
		anchor->registry_handle = DSM_HANDLE_INVALID;

	if (anchor->registry_handle == DSM_HANDLE_INVALID)
	{
		seg = dsm_create(dynbgw_registry_size(dynbgw_max_workers), 0);
		dynbgw_registry_init(dsm_segment_address(seg), dynbgw_max_workers);
		dsm_pin_segment(seg);
		anchor->registry_handle = dsm_segment_handle(seg);
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
	LWLockRegisterTranche(dynbgw_reg->tranche_id, "dynbgw");
	return dynbgw_reg;
}

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

/*
 * Which limit a new worker would pass, counting the workers that have a
 * slot (but not slot exclude_n, a worker's own) and the sessions counted
 * beforehand.  Called with the registry locked, so that launches that
 * count at the same time cannot both take the last place.
 */
DynbgwLimit
dynbgw_limits_exceeded(const DynbgwLimits *limits, int exclude_n)
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

static void
dynbgw_saved_path(char *path, int n, uint64 generation)
{
	snprintf(path, MAXPGPATH, "%s/worker_%d_" UINT64_FORMAT,
			 DYNBGW_SAVED_DIR, n, generation);
}

/* Whether a saved definition belongs to this server's life. */
static bool
dynbgw_saved_is_current(const DynbgwSavedWorker *saved)
{
	return saved->magic == DYNBGW_SAVED_MAGIC &&
		saved->postmaster_pid == PostmasterPid &&
		saved->postmaster_started == PgStartTime;
}

static bool
dynbgw_read_saved(const char *path, DynbgwSavedWorker *saved)
{
	int			fd;
	bool		ok;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		return false;
	ok = read(fd, saved, sizeof(*saved)) == sizeof(*saved) &&
		dynbgw_saved_is_current(saved);
	CloseTransientFile(fd);
	return ok;
}

/*
 * Remove the saved definitions of an earlier server life.  Called when the
 * registry is created: a crash-restart keeps the postmaster, and with it
 * the restartable workers the files are for; a clean restart ends them all.
 */
static void
dynbgw_remove_stale_saved(void)
{
	DIR		   *dir;
	struct dirent *de;
	DynbgwSavedWorker saved;

	dir = AllocateDir(DYNBGW_SAVED_DIR);
	if (dir == NULL)
		return;
	while ((de = ReadDirExtended(dir, DYNBGW_SAVED_DIR, LOG)) != NULL)
	{
		char		path[MAXPGPATH];

		if (strncmp(de->d_name, "worker_", 7) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", DYNBGW_SAVED_DIR, de->d_name);
		if (!dynbgw_read_saved(path, &saved) && unlink(path) != 0)
			elog(LOG, "could not remove file \"%s\": %m", path);
	}
	FreeDir(dir);
}

/*
 * Keep a restartable worker's definition on disk, for a worker restarted
 * after a crash-restart emptied the registry.  Written with a rename so a
 * reader never sees half a file.
 */
void
dynbgw_save_worker(int n, const DynbgwSlot *slot)
{
	DynbgwSavedWorker saved;
	char		path[MAXPGPATH];
	char		tmppath[MAXPGPATH];
	int			fd;

	memset(&saved, 0, sizeof(saved));
	saved.magic = DYNBGW_SAVED_MAGIC;
	saved.postmaster_pid = PostmasterPid;
	saved.postmaster_started = PgStartTime;
	saved.generation = slot->generation;
	saved.launched_at = slot->launched_at;
	saved.launched_by_pid = slot->launched_by_pid;
	saved.def = slot->def;

	if (MakePGDirectory(DYNBGW_SAVED_DIR) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m",
						DYNBGW_SAVED_DIR)));
	dynbgw_saved_path(path, n, slot->generation);
	snprintf(tmppath, sizeof(tmppath), "%s.tmp", path);
	fd = OpenTransientFile(tmppath, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmppath)));
	errno = 0;
	if (write(fd, &saved, sizeof(saved)) != sizeof(saved))
	{
		if (errno == 0)
			errno = ENOSPC;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmppath)));
	}
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", tmppath)));
	if (rename(tmppath, path) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m",
						tmppath, path)));
}

/* Read the saved definition of worker n's launch of this generation. */
bool
dynbgw_load_worker(int n, uint64 generation, DynbgwSavedWorker *saved)
{
	char		path[MAXPGPATH];

	dynbgw_saved_path(path, n, generation);
	return dynbgw_read_saved(path, saved) && saved->generation == generation;
}

void
dynbgw_forget_worker(int n, uint64 generation)
{
	char		path[MAXPGPATH];

	dynbgw_saved_path(path, n, generation);
	if (unlink(path) != 0 && errno != ENOENT)
		elog(LOG, "could not remove file \"%s\": %m", path);
}

/*
 * Keep an error message in a slot, cut at a character boundary.  It stays
 * in the encoding of the database of the process that reported it.
 */
void
dynbgw_set_error(DynbgwSlot *slot, int code, const char *message)
{
	int			len = pg_mbcliplen(message, strlen(message),
								   DYNBGW_MAX_ERROR - 1);

	slot->error_code = code;
	slot->error_encoding = GetDatabaseEncoding();
	memcpy(slot->last_error, message, len);
	slot->last_error[len] = '\0';
}

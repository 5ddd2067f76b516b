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

static void dynbgw_remove_stale_saved(void);

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
	return add_size(add_size(offsetof(DynbgwRegistry, slots),
							 mul_size(shape->capacity, sizeof(DynbgwSlot))),
					mul_size(shape->history_size, sizeof(DynbgwRun)));
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
	reg->capacity = shape->capacity;
	reg->history_size = shape->history_size;
	/* Generations stay unique across crash-restarts, which keep workers. */
	reg->last_generation = GetCurrentTimestamp();
	for (int i = 0; i < shape->capacity; i++)
		ConditionVariableInit(&reg->slots[i].state_cv);
}

/* The history ring of the last runs, right after the slots. */
DynbgwRun *
dynbgw_history(DynbgwRegistry *reg)
{
	return (DynbgwRun *) &reg->slots[reg->capacity];
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
	slot->error_code = code;
	slot->error_encoding = GetDatabaseEncoding();
	dynbgw_clip(slot->last_error, message, DYNBGW_MAX_ERROR);
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

/*
 * How a launch that ends now ended: stopped if a stop was asked for, failed
 * if it failed (see DynbgwOutcome) or its last run did, else succeeded.
 */
DynbgwOutcome
dynbgw_outcome_of(const DynbgwSlot *slot, bool failed)
{
	if (slot->stop_requested)
		return DYNBGW_OUTCOME_STOPPED;
	if (failed || slot->last_run_failed)
		return DYNBGW_OUTCOME_FAILED;
	return DYNBGW_OUTCOME_SUCCEEDED;
}

/*
 * End the launch in this slot: free the slot and keep how the launch ended
 * for dynbgw_wait().  Called with the registry locked; the caller
 * broadcasts the slot's condition variable once it has released the lock.
 */
void
dynbgw_slot_end(DynbgwSlot *slot, DynbgwOutcome outcome)
{
	DynbgwEnding *ended = &slot->ended;

	slot->ended_before = slot->ended;
	slot->state = DYNBGW_FREE;
	ended->generation = slot->generation;
	ended->outcome = outcome;
	ended->pid = slot->last_pid != 0 ? slot->last_pid : slot->ready_pid;
	ended->roleoid = slot->def.roleoid;
	ended->runs = slot->runs;
	ended->failures = slot->failures;
	ended->ended_at = GetCurrentTimestamp();
	ended->error_code = slot->error_code;
	ended->error_encoding = slot->error_encoding;
	strlcpy(ended->error, slot->last_error, sizeof(ended->error));
	strlcpy(ended->result, slot->last_result, sizeof(ended->result));
}

/*
 * Add a run of the launch in this slot to the history ring, overwriting
 * the oldest.  Called by the worker with the registry locked, in the same
 * hold as its other bookkeeping of the run.
 */
void
dynbgw_record_run(const DynbgwSlot *slot, int n, int pid,
				  TimestampTz started, TimestampTz finished,
				  DynbgwRunStatus status, int error_code, const char *message)
{
	DynbgwRun  *run;

	if (dynbgw_reg->history_size == 0)
		return;
	run = &dynbgw_history(dynbgw_reg)[dynbgw_reg->runs_recorded++ %
									  dynbgw_reg->history_size];
	run->n = n;
	run->launch = slot->generation;
	run->pid = pid;
	run->roleoid = slot->def.roleoid;
	run->dboid = slot->def.dboid;
	run->started = started;
	run->finished = finished;
	run->status = status;
	run->encoding = GetDatabaseEncoding();
	run->error_code = error_code;
	dynbgw_clip(run->message, message ? message : "", DYNBGW_MAX_RUN_ERROR);
	strlcpy(run->result, status == DYNBGW_RUN_SUCCEEDED ? slot->last_result : "",
			sizeof(run->result));
}

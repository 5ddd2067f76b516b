/*-------------------------------------------------------------------------
 *
 * dynbgw_worker_file.c
 *		The files that keep restartable workers' definitions through a
 *		crash-restart.
 *
 * A crash-restart empties the registry while the postmaster keeps, and
 * restarts, every worker registered with a restart delay.  Such a launch
 * keeps its definition in pg_dynbgw/worker_N_GENERATION, one file per
 * launch, so that removing one launch's file never touches the next one's;
 * a worker restarted into an empty registry takes its slot back from it.
 * Files of an earlier server life are removed when the registry is made.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/fd.h"

#include "dynbgw.h"

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
void
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
 * Remove the temporary file of a save that failed, keeping errno for the
 * error about to be raised.  Only its writer touches it, so that removing
 * an ended launch's file never races with a save in progress.
 */
static void
dynbgw_discard_tmp(const char *tmppath)
{
	int			save_errno = errno;

	(void) unlink(tmppath);
	errno = save_errno;
}

/*
 * Keep a restartable worker's definition on disk, for a worker restarted
 * after a crash-restart emptied the registry.  Written with a rename so a
 * reader never sees half a file.
 */
void
dynbgw_save_worker(int n, uint64 generation, TimestampTz launched_at,
				   const DynbgwDefinition *def)
{
	DynbgwSavedWorker saved;
	char		path[MAXPGPATH];
	char		tmppath[MAXPGPATH];
	int			fd;

	memset(&saved, 0, sizeof(saved));
	saved.magic = DYNBGW_SAVED_MAGIC;
	saved.postmaster_pid = PostmasterPid;
	saved.postmaster_started = PgStartTime;
	saved.generation = generation;
	saved.launched_at = launched_at;
	saved.launched_by_pid = MyProcPid;
	saved.def = *def;

	if (MakePGDirectory(DYNBGW_SAVED_DIR) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m",
						DYNBGW_SAVED_DIR)));
	dynbgw_saved_path(path, n, generation);
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
		dynbgw_discard_tmp(tmppath);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmppath)));
	}
	if (CloseTransientFile(fd) != 0)
	{
		dynbgw_discard_tmp(tmppath);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", tmppath)));
	}
	if (rename(tmppath, path) != 0)
	{
		dynbgw_discard_tmp(tmppath);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m",
						tmppath, path)));
	}
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

/*-------------------------------------------------------------------------
 *
 * dynbgw_result_store.c
 *		Results kept in shared memory, for any session to read.
 *
 * A run of a worker launched with keep_result leaves the rows of its last
 * statement here (dynbgw_result_keep.c writes them), and dynbgw_result()
 * and its kin read them (dynbgw_result.c).  They live in a DSA area made
 * on the first keep, so that memory is taken only for what is kept, and
 * like the registry they are gone at a restart.  A directory in the area
 * lists the results by key: a worker number, and a task (0 for the
 * worker's own runs), so that one number can hold many results.  Each
 * result is bounded (dynbgw.max_result_size, checked as its rows are
 * written) and so is their total (dynbgw.max_total_result_size, here).
 *
 * A result is kept in two steps around the commit of its run: staged
 * before it (room reserved and the data copied in, where a lack of room
 * fails the run) and published after it (the directory points to the new
 * data, which cannot fail), so that a run that fails keeps nothing.
 * Readers copy data out under the store's lock, after checking without it
 * that they may; a version number tells them whether what they checked is
 * still what is there.  The lock is held for the directory and copies,
 * never for catalog access.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/dsa.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "dynbgw.h"

int			dynbgw_max_result_size = 1024;	/* kB */
int			dynbgw_max_total_result_size = 64 * 1024;	/* kB */

/* A directory entry: a result, or what is left once it is dropped. */
typedef struct DynbgwResultEntry
{
	DynbgwResultInfo info;
	dsa_pointer data;			/* InvalidDsaPointer: nothing kept */
} DynbgwResultEntry;

#define DYNBGW_DIRECTORY_INITIAL_SIZE	16

/*
 * However memory fragments, the area never grows past twice the total
 * allowed, plus its first segment.
 */
#define DYNBGW_AREA_SLACK	((size_t) 1024 * 1024)

/* This process's mapping of the area, once it has one. */
static dsa_area *results_area = NULL;

/* This process's staged result, until it is published or given up. */
static DynbgwResultInfo staged_info;
static bool staged_reserved = false;	/* its size counts in the total */
static dsa_pointer staged_data = InvalidDsaPointer;

static DynbgwResultStore *
dynbgw_result_store(void)
{
	return &dynbgw_registry()->results;
}

/*
 * This process's mapping of the area.  If none exists, it is made when
 * create is true, and NULL is returned otherwise: nothing is kept.
 */
static dsa_area *
dynbgw_results_area(bool create)
{
	DynbgwResultStore *store = dynbgw_result_store();

	return dynbgw_area_map(&store->lock, &store->area, &results_area, create);
}

/* The entry of this key, or NULL.  The store's lock is held. */
static DynbgwResultEntry *
dynbgw_result_find(dsa_area *area, const DynbgwResultKey *key)
{
	DynbgwResultStore *store = dynbgw_result_store();
	DynbgwResultEntry *directory;

	if (store->entries == 0)
		return NULL;
	directory = dsa_get_address(area, store->directory);
	for (int i = 0; i < store->entries; i++)
	{
		if (directory[i].info.key.n == key->n &&
			directory[i].info.key.task == key->task)
			return &directory[i];
	}
	return NULL;
}

/*
 * The entry of this key, made empty if there was none; NULL if the area
 * has no room for a larger directory.  The store's lock is held
 * exclusively.
 */
static DynbgwResultEntry *
dynbgw_result_find_or_add(dsa_area *area, const DynbgwResultKey *key)
{
	DynbgwResultStore *store = dynbgw_result_store();
	DynbgwResultEntry *entry = dynbgw_result_find(area, key);

	if (entry != NULL)
		return entry;
	if (store->entries == store->directory_size)
	{
		int			size = Max(DYNBGW_DIRECTORY_INITIAL_SIZE,
							   store->directory_size * 2);
		dsa_pointer grown;

		grown = dsa_allocate_extended(area, size * sizeof(DynbgwResultEntry),
									  DSA_ALLOC_NO_OOM);
		if (!DsaPointerIsValid(grown))
			return NULL;
		if (store->entries > 0)
		{
			memcpy(dsa_get_address(area, grown),
				   dsa_get_address(area, store->directory),
				   store->entries * sizeof(DynbgwResultEntry));
			dsa_free(area, store->directory);
		}
		store->directory = grown;
		store->directory_size = size;
	}
	entry = (DynbgwResultEntry *) dsa_get_address(area, store->directory) +
		store->entries++;
	memset(entry, 0, sizeof(*entry));
	entry->info.key = *key;
	entry->data = InvalidDsaPointer;
	return entry;
}

/*
 * A task's entry goes once it holds nothing: each task has a key of its
 * own, never used again.  A worker's entry stays, holding the generation
 * that later launches check.  The store's lock is held exclusively.
 */
static void
dynbgw_result_forget_locked(dsa_area *area, DynbgwResultEntry *entry)
{
	DynbgwResultStore *store = dynbgw_result_store();
	DynbgwResultEntry *directory = dsa_get_address(area, store->directory);

	if (entry->info.key.task == 0 || DsaPointerIsValid(entry->data))
		return;
	*entry = directory[--store->entries];
}

static void
dynbgw_result_no_memory(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of shared memory for dynbgw results")));
}

/*
 * Before the run's commit: reserve room for a result (info, and its data
 * of info->size bytes) and copy it into the area.  Fails the run if the
 * total would exceed dynbgw.max_total_result_size.  The result it replaces
 * is not counted: it goes once this one is published.
 */
void
dynbgw_result_stage(const DynbgwResultInfo *info, const char *data)
{
	DynbgwResultStore *store = dynbgw_result_store();
	dsa_area   *area = dynbgw_results_area(true);
	uint64		limit = (uint64) dynbgw_max_total_result_size * 1024;
	DynbgwResultEntry *entry;
	uint64		total = 0;
	bool		room = false;

	Assert(!staged_reserved);
	LWLockAcquire(&store->lock, LW_EXCLUSIVE);
	entry = dynbgw_result_find_or_add(area, &info->key);
	if (entry != NULL)
	{
		total = store->total;
		if (DsaPointerIsValid(entry->data))
			total -= entry->info.size;
		room = total + info->size <= limit;
		if (room)
			store->total += info->size;
	}
	LWLockRelease(&store->lock);
	if (entry == NULL)
		dynbgw_result_no_memory();
	if (!room)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("dynbgw results would exceed \"dynbgw.max_total_result_size\" (%d kB)",
						dynbgw_max_total_result_size),
				 errdetail("Other results take " UINT64_FORMAT " bytes, and this one has %zu.",
						   total, info->size),
				 errhint("Drop results that are no longer needed with dynbgw_drop_result() or dynbgw_drop_task_result(), or raise \"dynbgw.max_total_result_size\".")));

	/* From here on, dynbgw_result_unstage() gives the room back. */
	staged_info = *info;
	staged_reserved = true;
	dsa_set_size_limit(area, 2 * limit + DYNBGW_AREA_SLACK);
	/* A result without columns has no data, but is one. */
	staged_data = dsa_allocate_extended(area, Max(info->size, 1),
										DSA_ALLOC_NO_OOM);
	if (!DsaPointerIsValid(staged_data))
		dynbgw_result_no_memory();
	memcpy(dsa_get_address(area, staged_data), data, info->size);
}

/*
 * After the run's commit: the staged result replaces the key's, unless a
 * later launch of the number has taken the key meanwhile.
 */
void
dynbgw_result_publish(void)
{
	DynbgwResultStore *store = dynbgw_result_store();
	TimestampTz now = GetCurrentTimestamp();
	DynbgwResultEntry *entry;
	dsa_pointer unused = staged_data;
	Size		unused_size = staged_info.size;

	Assert(staged_reserved && DsaPointerIsValid(staged_data));
	LWLockAcquire(&store->lock, LW_EXCLUSIVE);
	/* Staging made the entry; only a task's goes, once dropped. */
	entry = dynbgw_result_find(results_area, &staged_info.key);
	if (entry != NULL && entry->info.generation <= staged_info.generation)
	{
		unused = entry->data;
		unused_size = DsaPointerIsValid(unused) ? entry->info.size : 0;
		entry->info = staged_info;
		entry->info.kept_at = now;
		entry->info.version = ++store->last_version;
		entry->data = staged_data;
	}
	store->total -= unused_size;
	LWLockRelease(&store->lock);

	staged_reserved = false;
	staged_data = InvalidDsaPointer;
	if (DsaPointerIsValid(unused))
		dsa_free(results_area, unused);
}

/*
 * After a run that failed or was stopped: give back what was staged, if
 * anything.  Safe to call in any state, in an exit callback too.
 */
void
dynbgw_result_unstage(void)
{
	DynbgwResultStore *store;
	DynbgwResultEntry *entry;

	if (!staged_reserved)
		return;
	store = dynbgw_result_store();
	if (DsaPointerIsValid(staged_data))
		dsa_free(results_area, staged_data);
	LWLockAcquire(&store->lock, LW_EXCLUSIVE);
	store->total -= staged_info.size;
	entry = dynbgw_result_find(results_area, &staged_info.key);
	if (entry != NULL)
		dynbgw_result_forget_locked(results_area, entry);
	LWLockRelease(&store->lock);
	staged_reserved = false;
	staged_data = InvalidDsaPointer;
}

/*
 * Drop the result of this key if it is the given version (0: any) and was
 * kept by a launch before generation (0: by any launch); with a
 * generation, also refuse results of launches before it from now on.
 * True if a result was dropped.
 */
bool
dynbgw_result_drop(const DynbgwResultKey *key, uint64 generation,
				   uint64 version)
{
	DynbgwResultStore *store = dynbgw_result_store();
	dsa_area   *area = dynbgw_results_area(false);
	DynbgwResultEntry *entry;
	dsa_pointer dropped = InvalidDsaPointer;

	if (area == NULL)
		return false;
	LWLockAcquire(&store->lock, LW_EXCLUSIVE);
	entry = dynbgw_result_find(area, key);
	if (entry != NULL && DsaPointerIsValid(entry->data) &&
		(version == 0 || entry->info.version == version) &&
		(generation == 0 || entry->info.generation < generation))
	{
		dropped = entry->data;
		store->total -= entry->info.size;
		entry->data = InvalidDsaPointer;
		entry->info.size = 0;
		entry->info.version = ++store->last_version;
	}
	if (entry != NULL)
	{
		entry->info.generation = Max(entry->info.generation, generation);
		dynbgw_result_forget_locked(area, entry);
	}
	LWLockRelease(&store->lock);
	if (!DsaPointerIsValid(dropped))
		return false;
	dsa_free(area, dropped);
	return true;
}

/*
 * What is kept under this key, if it is the given version (0: any): its
 * description into info and the first len bytes of its data into data,
 * each if not NULL.  False if nothing is kept, or another version.
 */
bool
dynbgw_result_get(const DynbgwResultKey *key, uint64 version,
				  DynbgwResultInfo *info, char *data, Size len)
{
	DynbgwResultStore *store = dynbgw_result_store();
	dsa_area   *area = dynbgw_results_area(false);
	DynbgwResultEntry *entry;
	bool		found = false;

	if (area == NULL)
		return false;
	LWLockAcquire(&store->lock, LW_SHARED);
	entry = dynbgw_result_find(area, key);
	if (entry != NULL && DsaPointerIsValid(entry->data) &&
		(version == 0 || entry->info.version == version))
	{
		if (info != NULL)
			*info = entry->info;
		Assert(len <= entry->info.size);
		if (data != NULL)
			memcpy(data, dsa_get_address(area, entry->data), len);
		found = true;
	}
	LWLockRelease(&store->lock);
	return found;
}

/*
 * Every result kept, without data, in the order they were first kept;
 * *count says how many.  Copied in one hold of the lock.
 */
DynbgwResultInfo *
dynbgw_result_list(int *count)
{
	DynbgwResultStore *store = dynbgw_result_store();
	dsa_area   *area = dynbgw_results_area(false);
	DynbgwResultInfo *infos = NULL;
	int			room = 0;

	*count = 0;
	if (area == NULL)
		return NULL;
	for (;;)
	{
		DynbgwResultEntry *directory;
		int			entries;

		LWLockAcquire(&store->lock, LW_SHARED);
		entries = store->entries;
		if (entries <= room)
		{
			directory = entries > 0 ?
				dsa_get_address(area, store->directory) : NULL;
			for (int i = 0; i < entries; i++)
			{
				if (DsaPointerIsValid(directory[i].data))
					infos[(*count)++] = directory[i].info;
			}
		}
		LWLockRelease(&store->lock);
		if (entries <= room)
			return infos;
		/* Allocated without the lock; the directory may grow meanwhile. */
		room = entries;
		infos = infos == NULL ? palloc(room * sizeof(DynbgwResultInfo)) :
			repalloc(infos, room * sizeof(DynbgwResultInfo));
	}
}

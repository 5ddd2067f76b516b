/*-------------------------------------------------------------------------
 *
 * dynbgw_pool.c
 *		Pools of workers from SQL: dynbgw_pool_create(), dynbgw_pool_drop()
 *		and the view dynbgw_pools.
 *
 * A pool is a named set of workers, launched as any other worker is (the
 * same checks of authority and limits), that run the tasks submitted to
 * it (dynbgw_task.c) instead of a command of their own.  They take the
 * highest free numbers, so that the numbers scripts give their own workers,
 * counted from 1, stay free, and numbers that hold a result are passed
 * over.  A pool's worker that exits abnormally is started again a second
 * later, within the restart limits every worker has, so the pool stays at
 * its size; a crash-restart brings the workers back, and they remake their
 * pool (dynbgw_pool_join()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_pool_create);
PG_FUNCTION_INFO_V1(dynbgw_pool_drop);
PG_FUNCTION_INFO_V1(dynbgw_pools);

/* After an abnormal exit, a pool's worker is back this many seconds later. */
#define DYNBGW_POOL_RESTART_S	1

#define DYNBGW_POOLS_COLS	8

/*
 * A pool name argument: at most a name's length, in printable ASCII, since
 * pools are the whole server's and databases differ in their encodings.
 */
static char *
dynbgw_pool_name_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *name;

	dynbgw_require(fcinfo, argno, "pool");
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pool name must not be empty")));
	for (const char *c = name; *c != '\0'; c++)
	{
		if (*c < 32 || *c > 126)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pool name \"%s\" has characters other than printable ASCII",
							name),
					 errdetail("Pools are named server-wide, in every database's encoding alike.")));
	}
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("pool name \"%s\" is too long", name),
				 errdetail("A pool name may have at most %d bytes.",
						   NAMEDATALEN - 1)));
	return name;
}

/* The pool of this name; an error if there is none. */
void
dynbgw_pool_of_name(const char *name, DynbgwPoolInfo *pool)
{
	if (!dynbgw_pool_get(name, 0, pool))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("dynbgw pool \"%s\" does not exist", name),
				 errhint("The view dynbgw_pools lists the pools.")));
}

/*
 * The next number for a pool's worker below below: free, and holding no
 * result, which the launch would drop; 0 if there is none.
 */
static int
dynbgw_pool_free_number(int below)
{
	for (int n = below - 1; n >= 1; n--)
	{
		DynbgwOccupant occupant;
		DynbgwResultKey key = {n, 0};

		dynbgw_slot_look(n, &occupant);
		if (occupant.state == DYNBGW_FREE &&
			!dynbgw_result_get(&key, 0, NULL, NULL, 0))
			return n;
	}
	return 0;
}

/*
 * Stop the pool's workers, waiting for them until the deadline, and end
 * its tasks that wait.  True if all are gone, and with them the pool; a
 * pool that is removed anyway goes at once, its workers ending by
 * themselves when they find it gone.
 */
static bool
dynbgw_pool_stop(uint64 pool_id, TimestampTz deadline, bool remove_anyway)
{
	int			capacity = dynbgw_registry()->capacity;
	int		   *numbers = palloc(capacity * sizeof(int));
	uint64	   *generations = palloc(capacity * sizeof(uint64));
	int			count;
	bool		stopped = true;

	dynbgw_pool_close(pool_id, NULL);
	count = dynbgw_slot_pool_workers(pool_id, numbers, generations);
	for (int i = 0; i < count; i++)
		stopped &= dynbgw_stop_slot(numbers[i], generations[i], deadline);
	if (stopped || remove_anyway)
		dynbgw_pool_remove(pool_id);
	return stopped;
}

/* A pool whose making failed goes, its workers told to stop. */
static void
dynbgw_pool_create_failed(int code, Datum arg)
{
	(void) dynbgw_pool_stop(DatumGetUInt64(arg), GetCurrentTimestamp(), true);
}

/*
 * Whether an existing pool is the one asked for (its size, queue, database
 * and role), and takes tasks: a making of it again changes nothing.
 */
bool
dynbgw_pool_is(const DynbgwPoolInfo *pool, const DynbgwPoolInfo *asked)
{
	return pool->size == asked->size && pool->queue_size == asked->queue_size &&
		pool->dboid == asked->dboid && pool->roleoid == asked->roleoid &&
		!pool->dropping && !pool->failed;
}

/*
 * The pool dynbgw_pool_create's arguments ask for, and the definition of
 * its workers, as dynbgw_launch makes a worker's: run as role in database,
 * on the caller's authority.
 */
static void
dynbgw_pool_args(FunctionCallInfo fcinfo, DynbgwPoolInfo *pool,
				 DynbgwDefinition *def)
{
	DynbgwRegistry *reg = dynbgw_registry();

	memset(pool, 0, sizeof(*pool));
	strlcpy(pool->name, dynbgw_pool_name_arg(fcinfo, 0), NAMEDATALEN);
	dynbgw_require(fcinfo, 1, "size");
	pool->size = PG_GETARG_INT32(1);
	if (pool->size < 1 || pool->size > reg->capacity)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pool size must be between 1 and %d", reg->capacity),
				 errdetail("A pool's workers take worker numbers, of which there are %d (\"dynbgw.max_workers\").",
						   reg->capacity)));
	dynbgw_require(fcinfo, 4, "queue_size");
	pool->queue_size = PG_GETARG_INT32(4);
	if (pool->queue_size < 1 || pool->queue_size > dynbgw_max_queued_tasks)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queue_size must be between 1 and %d",
						dynbgw_max_queued_tasks),
				 errhint("\"dynbgw.max_queued_tasks\" bounds the queues of all pools together.")));

	def->kind = DYNBGW_KIND_SQL;
	def->roleoid = dynbgw_role_arg(fcinfo, 3);
	def->dboid = dynbgw_database_arg(fcinfo, 2, MyDatabaseId, def->roleoid);
	dynbgw_authority_record(def, fcinfo->flinfo->fn_oid);
	def->encoding = dynbgw_database_encoding(def->dboid);
	def->restart_s = DYNBGW_POOL_RESTART_S;
	pool->dboid = def->dboid;
	pool->roleoid = def->roleoid;
	pool->owner = GetUserId();
	pool->made_in = MyDatabaseId;
	pool->encoding = def->encoding;
}

/* Why a pool could not be added (dynbgw_pool_add()); pool: one that exists. */
static void
dynbgw_pool_add_error(const DynbgwPoolInfo *pool, DynbgwQueueStatus status)
{
	if (status == DYNBGW_QUEUE_EXISTS)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("dynbgw pool \"%s\" already exists", pool->name),
				 pool->dropping ? errdetail("It is being dropped.") :
				 pool->failed ?
				 errdetail("It failed: its workers lost the authority it was made with, or are all gone.") :
				 errdetail("It has %d workers and a queue of %d tasks, in another database or as another role than asked.",
						   pool->size, pool->queue_size),
				 errhint("Drop it first with dynbgw_pool_drop().")));
	if (status == DYNBGW_QUEUE_TOO_MANY)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many dynbgw pools"),
				 errdetail("There may be as many pools as worker numbers, %d (\"dynbgw.max_workers\").",
						   dynbgw_registry()->capacity),
				 errhint("Drop a pool that is no longer needed.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("dynbgw pools would queue more than \"dynbgw.max_queued_tasks\" (%d) tasks",
					dynbgw_max_queued_tasks),
			 errhint("Make the pool with a smaller queue_size, drop another pool, or raise \"dynbgw.max_queued_tasks\".")));
}

/* Launch the workers of a pool just added, at the highest free numbers. */
static void
dynbgw_pool_launch(const DynbgwDefinition *def)
{
	int			capacity = dynbgw_registry()->capacity;
	int			n = capacity + 1;

	for (int i = 0; i < def->pool_size; i++)
	{
		n = dynbgw_pool_free_number(n);
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("not enough free dynbgw worker numbers for a pool of %d",
							def->pool_size),
					 errdetail("Worker numbers go from 1 to %d (\"dynbgw.max_workers\"); numbers that hold a result are not taken.",
							   capacity)));
		(void) dynbgw_launch_worker(n, def, DYNBGW_IF_RUNNING_ERROR, 0, NULL);
	}
}

/*
 * dynbgw_pool_create(name, size, database, role, queue_size, persist)
 * returns void
 *
 * Start a pool of size workers connected to database as role, taking the
 * tasks submitted to it, of which queue_size may wait, and save it for
 * dynbgw_restore() if persist.  The same pool again is a notice; another
 * of the same name, an error.
 */
Datum
dynbgw_pool_create(PG_FUNCTION_ARGS)
{
	DynbgwDefinition *def = palloc0(sizeof(DynbgwDefinition));
	DynbgwPoolInfo pool;
	DynbgwPoolInfo asked;
	DynbgwQueueStatus status;
	uint64		id;
	bool		persist = !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);

	dynbgw_pool_args(fcinfo, &asked, def);
	pool = asked;
	id = dynbgw_pool_add(&pool, &status);
	if (status == DYNBGW_QUEUE_EXISTS && dynbgw_pool_is(&pool, &asked))
	{
		ereport(NOTICE,
				(errmsg("dynbgw pool \"%s\" already exists, skipping",
						pool.name)));
		if (persist)
			dynbgw_persist_pool_save(fcinfo, &asked);
		PG_RETURN_VOID();
	}
	if (status != DYNBGW_QUEUE_DONE)
		dynbgw_pool_add_error(&pool, status);

	def->pool_id = id;
	strlcpy(def->pool_name, pool.name, NAMEDATALEN);
	def->pool_size = pool.size;
	def->pool_queue_size = pool.queue_size;
	PG_ENSURE_ERROR_CLEANUP(dynbgw_pool_create_failed, UInt64GetDatum(id));
	{
		/* Saved first: a pool that cannot be saved is not made. */
		if (persist)
			dynbgw_persist_pool_save(fcinfo, &pool);
		dynbgw_pool_launch(def);
	}
	PG_END_ENSURE_ERROR_CLEANUP(dynbgw_pool_create_failed, UInt64GetDatum(id));
	PG_RETURN_VOID();
}

/*
 * Who may drop a pool: its owner, and those who may stop its workers as
 * the role they run as.
 */
static void
dynbgw_pool_check_may_drop(const DynbgwPoolInfo *pool)
{
	if (!dynbgw_may_stop_for(pool->roleoid, pool->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to drop dynbgw pool \"%s\"",
						pool->name),
				 errdetail("Only the role that made it, roles with the privileges of its role or of \"pg_signal_backend\", and superusers may drop it.")));
}

/*
 * dynbgw_pool_drop(name, timeout, forget) returns boolean
 *
 * Stop the pool's workers, waiting for them for at most timeout; the tasks
 * that wait end as stopped, and those that run are stopped with them.  Its
 * saved definition is deleted if forget.  False, with a warning, if a
 * worker had not gone by then (a call again finishes the drop), or, with a
 * notice, if there is no such pool.
 */
Datum
dynbgw_pool_drop(PG_FUNCTION_ARGS)
{
	char	   *name = dynbgw_pool_name_arg(fcinfo, 0);
	int64		timeout_us = dynbgw_interval_arg(fcinfo, 1, "timeout");
	bool		forget = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	DynbgwPoolInfo pool;

	if (!dynbgw_pool_get(name, 0, &pool))
	{
		ereport(NOTICE,
				(errmsg("dynbgw pool \"%s\" does not exist, skipping", name)));
		if (forget)
			dynbgw_persist_pool_forget(fcinfo, name);
		PG_RETURN_BOOL(false);
	}
	dynbgw_pool_check_may_drop(&pool);
	/* Its saved definition is in the database it was made from. */
	if (forget && pool.made_in != MyDatabaseId)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dynbgw pool \"%s\" was made from another database",
						name),
				 get_database_name(pool.made_in) ?
				 errdetail("Its saved definition, if any, is in database \"%s\".",
						   get_database_name(pool.made_in)) :
				 errdetail("That database was dropped, and its saved definitions with it."),
				 errhint("Drop it with forget from the database it was made from, or without forget from here.")));
	if (!dynbgw_pool_stop(pool.id, GetCurrentTimestamp() + timeout_us, false))
	{
		ereport(WARNING,
				(errmsg("the workers of dynbgw pool \"%s\" did not stop within the timeout",
						name),
				 errhint("The pool takes no more tasks; drop it again to wait for them.")));
		PG_RETURN_BOOL(false);
	}
	if (forget)
		dynbgw_persist_pool_forget(fcinfo, name);
	PG_RETURN_BOOL(true);
}

/*
 * dynbgw_pools() returns setof record
 *
 * Every pool: its name, size, database, role and queue to all; how many
 * tasks wait to those who may see what its workers do.
 */
Datum
dynbgw_pools(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwPoolInfo *pools;
	int			count;

	InitMaterializedSRF(fcinfo, 0);
	pools = dynbgw_pool_list(&count);
	for (int i = 0; i < count; i++)
	{
		const DynbgwPoolInfo *pool = &pools[i];
		Datum		values[DYNBGW_POOLS_COLS];
		bool		nulls[DYNBGW_POOLS_COLS];
		char	   *rolename = GetUserNameFromId(pool->roleoid, true);
		char	   *dbname = get_database_name(pool->dboid);
		char	   *owner = GetUserNameFromId(pool->owner, true);

		memset(nulls, 0, sizeof(nulls));
		values[0] = CStringGetTextDatum(pool->name);
		values[1] = CStringGetTextDatum(pool->dropping ? "dropping" :
										pool->failed ? "failed" : "active");
		values[2] = Int32GetDatum(pool->size);
		values[3] = dynbgw_name_datum(dbname);
		nulls[3] = dbname == NULL;
		values[4] = dynbgw_name_datum(rolename);
		nulls[4] = rolename == NULL;
		values[5] = dynbgw_name_datum(owner);
		nulls[5] = owner == NULL;
		values[6] = Int32GetDatum(pool->queue_size);
		values[7] = Int32GetDatum(pool->waiting);
		nulls[7] = !dynbgw_may_see(pool->roleoid);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*-------------------------------------------------------------------------
 *
 * dynbgw_status.c
 *		The SQL functions that report on workers: dynbgw_workers(),
 *		dynbgw_wait() and dynbgw_runs().
 *
 * Each copies what it shows from the registry (dynbgw_slot.c's readers)
 * and looks names up and builds rows after the lock is released.  As in
 * pg_stat_activity, a viewer without the privileges of a worker's role, or
 * of pg_read_all_stats, sees only who and where it is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_workers);
PG_FUNCTION_INFO_V1(dynbgw_wait);
PG_FUNCTION_INFO_V1(dynbgw_runs);

/*
 * Text from the registry for this session.  It is in the encoding of the
 * database it came from: where that differs from ours, or the text is not
 * valid, non-ASCII bytes show as '?' rather than as invalid text.
 */
char *
dynbgw_text_for_session(const char *str, int encoding)
{
	char	   *copy = pstrdup(str);

	if (encoding != GetDatabaseEncoding() ||
		!pg_verifymbstr(copy, strlen(copy), true))
	{
		for (char *p = copy; *p; p++)
		{
			if (IS_HIGHBIT_SET(*p))
				*p = '?';
		}
	}
	return copy;
}

/* ---- listing ---- */

/* Columns of version 1.4; those of an earlier one come first. */
#define DYNBGW_WORKERS_COLS 27
#define DYNBGW_WAIT_COLS	9
#define DYNBGW_RUNS_COLS	14
#define DYNBGW_RUNS_CHUNK	1024	/* runs copied in one hold of the lock */

/*
 * Whether the current user may see all of what a worker of this role
 * does: as in pg_stat_activity, with its role's privileges or those of
 * pg_read_all_stats.
 */
bool
dynbgw_may_see(Oid roleoid)
{
	return has_privs_of_role(GetUserId(), roleoid) ||
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/* Text of the registry for a result column: NULL when empty. */
static void
dynbgw_text_column(Datum *value, bool *isnull, const char *str, int encoding)
{
	*isnull = str[0] == '\0';
	if (!*isnull)
		*value = CStringGetTextDatum(dynbgw_text_for_session(str, encoding));
}

/* A name column's value; 0 for NULL, whose column the caller makes null. */
Datum
dynbgw_name_datum(const char *str)
{
	Name		name;

	if (str == NULL)
		return (Datum) 0;
	name = palloc0(NAMEDATALEN);
	namestrcpy(name, str);
	return NameGetDatum(name);
}

static Datum
dynbgw_interval_datum(int64 us)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = us;
	return IntervalPGetDatum(iv);
}

static const char *const dynbgw_trigger_names[] = {
	[DYNBGW_TRIGGER_SCHEDULE] = "schedule",
	[DYNBGW_TRIGGER_WAKE] = "wake",
	[DYNBGW_TRIGGER_RETRY] = "retry",
	[DYNBGW_TRIGGER_TASK] = "task"
};

/* One worker as a row of dynbgw_workers; copy is its slot. */
static void
dynbgw_put_worker(ReturnSetInfo *rsinfo, int n, const DynbgwSlot *copy)
{
	Datum		values[DYNBGW_WORKERS_COLS];
	bool		nulls[DYNBGW_WORKERS_COLS];
	char	   *dbname;
	char	   *rolename;

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int32GetDatum(n);
	values[1] = Int32GetDatum(copy->pid);
	nulls[1] = (copy->pid == 0);
	values[2] = CStringGetTextDatum(copy->def.kind == DYNBGW_KIND_SQL ?
									"sql" : "function");
	dbname = OidIsValid(copy->def.dboid) ?
		get_database_name(copy->def.dboid) : NULL;
	values[4] = dynbgw_name_datum(dbname);
	nulls[4] = (dbname == NULL);
	rolename = GetUserNameFromId(copy->def.roleoid, true);
	values[5] = dynbgw_name_datum(rolename);
	nulls[5] = (rolename == NULL);

	/* What pg_stat_activity shows of others' sessions, and no more. */
	if (!dynbgw_may_see(copy->def.roleoid))
	{
		nulls[3] = true;
		for (int col = 6; col < DYNBGW_WORKERS_COLS; col++)
			nulls[col] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 values, nulls);
		return;
	}

	values[3] = CStringGetTextDatum(dynbgw_state_name(copy->state));
	if (copy->def.kind == DYNBGW_KIND_FUNCTION)
		values[6] = CStringGetTextDatum(psprintf("%s.%s",
												 copy->def.library,
												 copy->def.function));
	else if (copy->def.command[0] != '\0')
		values[6] = CStringGetTextDatum(dynbgw_text_for_session(copy->def.command,
																copy->def.encoding));
	else
		nulls[6] = true;
	dynbgw_text_column(&values[10], &nulls[10], copy->last_error,
					   copy->error_encoding);
	values[7] = IntervalPGetDatum(&copy->def.naptime);
	nulls[7] = (copy->def.kind != DYNBGW_KIND_SQL || copy->def.has_schedule ||
				copy->def.pool_id != 0);
	values[8] = Int64GetDatum(copy->runs);
	values[9] = Int64GetDatum(copy->failures);
	values[11] = TimestampTzGetDatum(copy->launched_at);
	values[12] = Int32GetDatum(copy->launched_by_pid);
	values[13] = TimestampTzGetDatum(copy->last_started);
	nulls[13] = (copy->last_started == 0);
	values[14] = TimestampTzGetDatum(copy->last_finished);
	nulls[14] = (copy->last_finished == 0);
	values[15] = dynbgw_interval_datum(copy->last_duration_us);
	nulls[15] = (copy->last_finished == 0);
	values[16] = TimestampTzGetDatum(copy->next_run);
	nulls[16] = (copy->next_run == 0);
	values[17] = Int64GetDatum(copy->def.max_runs);
	nulls[17] = (copy->def.max_runs == 0);
	values[18] = dynbgw_interval_datum((int64) copy->def.restart_s * USECS_PER_SEC);
	nulls[18] = (copy->def.restart_s == BGW_NEVER_RESTART);
	/* Command tags are ASCII. */
	dynbgw_text_column(&values[19], &nulls[19], copy->last_result,
					   PG_SQL_ASCII);
	dynbgw_text_column(&values[20], &nulls[20], copy->def.schedule_text,
					   copy->def.encoding);
	dynbgw_text_column(&values[21], &nulls[21], copy->def.timezone,
					   PG_SQL_ASCII);
	values[22] = CStringGetTextDatum(dynbgw_trigger_names[copy->last_trigger]);
	nulls[22] = (copy->last_started == 0);
	values[23] = Int32GetDatum(copy->def.retry);
	values[24] = dynbgw_interval_datum(copy->def.retry_delay_us);
	values[25] = BoolGetDatum(copy->def.keep_result);
	values[26] = CStringGetTextDatum(copy->def.pool_name);
	nulls[26] = copy->def.pool_id == 0;
	nulls[23] = nulls[24] = nulls[25] = (copy->def.kind != DYNBGW_KIND_SQL);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * dynbgw_workers() returns setof record
 *
 * One row per worker that exists.  As in pg_stat_activity, a worker of a
 * role whose privileges the viewer does not have is shown only by number,
 * PID, kind, database and role, unless the viewer has pg_read_all_stats.
 */
Datum
dynbgw_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwRegistry *reg = dynbgw_registry();
	DynbgwSlot *copy = palloc(sizeof(DynbgwSlot));

	InitMaterializedSRF(fcinfo, 0);
	for (int n = 1; n <= reg->capacity; n++)
	{
		if (dynbgw_slot_copy(n, copy))
			dynbgw_put_worker(rsinfo, n, copy);
	}
	return (Datum) 0;
}

/* ---- outcomes ---- */

static const char *const dynbgw_outcome_names[] = {
	[DYNBGW_OUTCOME_NONE] = "running",
	[DYNBGW_OUTCOME_SUCCEEDED] = "succeeded",
	[DYNBGW_OUTCOME_FAILED] = "failed",
	[DYNBGW_OUTCOME_STOPPED] = "stopped"
};

static const char *const dynbgw_run_status_names[] = {
	[DYNBGW_RUN_SUCCEEDED] = "succeeded",
	[DYNBGW_RUN_FAILED] = "failed",
	[DYNBGW_RUN_CANCELLED] = "cancelled",
	[DYNBGW_RUN_STOPPED] = "stopped"
};

/* How a run ended, or a pool's task: "succeeded", "failed", ... */
const char *
dynbgw_run_status_name(DynbgwRunStatus status)
{
	return dynbgw_run_status_names[status];
}

/* How a launch of worker n ended, or how far it got, as a row. */
static void
dynbgw_put_ending(ReturnSetInfo *rsinfo, int n, const DynbgwEnding *ending)
{
	Datum		values[DYNBGW_WAIT_COLS];
	bool		nulls[DYNBGW_WAIT_COLS];

	memset(nulls, true, sizeof(nulls));
	values[0] = Int32GetDatum(n);
	nulls[0] = false;
	values[1] = Int32GetDatum(ending->pid);
	nulls[1] = ending->pid == 0;
	if (dynbgw_may_see(ending->roleoid))
	{
		values[2] = CStringGetTextDatum(dynbgw_outcome_names[ending->outcome]);
		nulls[2] = false;
		values[3] = Int64GetDatum(ending->runs);
		nulls[3] = false;
		values[4] = Int64GetDatum(ending->failures);
		nulls[4] = false;
		if (ending->error_code != 0)
		{
			values[5] = CStringGetTextDatum(unpack_sql_state(ending->error_code));
			nulls[5] = false;
		}
		dynbgw_text_column(&values[6], &nulls[6], ending->error,
						   ending->error_encoding);
		dynbgw_text_column(&values[7], &nulls[7], ending->result, PG_SQL_ASCII);
		values[8] = TimestampTzGetDatum(ending->ended_at);
		nulls[8] = ending->ended_at == 0;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * dynbgw_wait(n, timeout) returns setof dynbgw_outcome
 *
 * Wait until the launch of worker n that exists now has ended, or for at
 * most timeout (NULL: for ever, 0: just look), and say how it ended, or
 * that it is still running.  Without a worker, say how the last launch of
 * n ended; no row if none ended since the server started.  The wait sleeps
 * on the slot's condition variable, which every end of a launch broadcasts.
 */
Datum
dynbgw_wait(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n = dynbgw_number_arg(fcinfo, 0, false);
	ConditionVariable *cv = dynbgw_slot_cv(n);
	TimestampTz deadline = DT_NOEND;
	uint64		waited = 0;
	DynbgwEndStatus status;
	DynbgwEnding ending;

	if (!PG_ARGISNULL(1))
		deadline = GetCurrentTimestamp() +
			dynbgw_interval_arg(fcinfo, 1, "timeout");
	InitMaterializedSRF(fcinfo, 0);

	ConditionVariablePrepareToSleep(cv);
	for (;;)
	{
		long		remaining_ms;

		status = dynbgw_slot_ending(n, &waited, &ending);
		remaining_ms = dynbgw_ms_until(deadline);
		if (status != DYNBGW_END_NOT_YET || remaining_ms <= 0)
			break;
		(void) ConditionVariableTimedSleep(cv, remaining_ms,
										   dynbgw_wait_event(DYNBGW_WAIT_END));
	}
	ConditionVariableCancelSleep();

	if (status == DYNBGW_END_LOST)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("how the launch of dynbgw worker %d that was waited for ended is no longer known", n),
				 errdetail("Two later launches of it ended before the wait could look.")));
	if (ending.generation != 0)
		dynbgw_put_ending(rsinfo, n, &ending);
	return (Datum) 0;
}

/* One run as a row of dynbgw_runs, with the visibility of dynbgw_workers. */
static void
dynbgw_put_run(ReturnSetInfo *rsinfo, const DynbgwRun *run)
{
	Datum		values[DYNBGW_RUNS_COLS];
	bool		nulls[DYNBGW_RUNS_COLS];
	char	   *rolename = GetUserNameFromId(run->roleoid, true);
	char	   *dbname = get_database_name(run->dboid);

	memset(nulls, true, sizeof(nulls));
	values[0] = Int32GetDatum(run->n);
	values[1] = Int64GetDatum((int64) run->launch);
	values[2] = Int32GetDatum(run->pid);
	nulls[0] = nulls[1] = nulls[2] = false;
	values[3] = dynbgw_name_datum(rolename);
	nulls[3] = rolename == NULL;
	values[4] = dynbgw_name_datum(dbname);
	nulls[4] = dbname == NULL;
	if (dynbgw_may_see(run->roleoid))
	{
		values[5] = TimestampTzGetDatum(run->started);
		values[6] = TimestampTzGetDatum(run->finished);
		values[7] = dynbgw_interval_datum(run->finished - run->started);
		values[8] = CStringGetTextDatum(dynbgw_run_status_name(run->status));
		nulls[5] = nulls[6] = nulls[7] = nulls[8] = false;
		if (run->error_code != 0)
		{
			values[9] = CStringGetTextDatum(unpack_sql_state(run->error_code));
			nulls[9] = false;
		}
		dynbgw_text_column(&values[10], &nulls[10], run->message,
						   run->encoding);
		dynbgw_text_column(&values[11], &nulls[11], run->result,
						   PG_SQL_ASCII);
		values[12] = CStringGetTextDatum(dynbgw_trigger_names[run->trigger]);
		values[13] = Int32GetDatum(run->attempt);
		nulls[12] = nulls[13] = false;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * dynbgw_runs() returns setof record
 *
 * The last dynbgw.history_size runs of all workers, oldest first, with the
 * same visibility as dynbgw_workers.
 */
Datum
dynbgw_runs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwRun  *chunk;
	MemoryContext rowcontext;
	uint64		first;
	int			count;

	InitMaterializedSRF(fcinfo, 0);
	first = dynbgw_history_span(&count);

	/*
	 * The ring oldest first, a chunk at a time: copied in one hold of the
	 * lock, so that a large history does not keep the workers from their
	 * bookkeeping, then turned into rows, which the tuplestore keeps within
	 * work_mem.  So a call takes the same memory whatever
	 * dynbgw.history_size is.  A run overwritten meanwhile is left out.
	 */
	chunk = palloc(sizeof(DynbgwRun) * DYNBGW_RUNS_CHUNK);
	rowcontext = AllocSetContextCreate(CurrentMemoryContext, "dynbgw_runs row",
									   ALLOCSET_SMALL_SIZES);
	for (int start = 0; start < count; start += DYNBGW_RUNS_CHUNK)
	{
		int			copied = dynbgw_history_copy(first + start,
												 first + Min(count, start + DYNBGW_RUNS_CHUNK),
												 chunk);

		for (int i = 0; i < copied; i++)
		{
			MemoryContext oldcontext = MemoryContextSwitchTo(rowcontext);

			dynbgw_put_run(rsinfo, &chunk[i]);
			MemoryContextSwitchTo(oldcontext);
			MemoryContextReset(rowcontext);
		}
	}
	return (Datum) 0;
}

/*-------------------------------------------------------------------------
 *
 * dynbgw.h
 *		What dynbgw's files share: the worker registry (dynbgw_registry.c),
 *		used by the SQL functions (dynbgw.c) and the worker processes
 *		(dynbgw_worker.c), and the interfaces of the other files.
 *
 * The registry is an array of slots, one per worker number n, in a dynamic
 * shared memory segment that any backend can find without the library
 * being preloaded (see dynbgw_registry() and docs/design.md).  Slots are
 * guarded by the registry's LWLock, which only dynbgw_slot.c (every change
 * of a slot, as a named transition) and dynbgw_slot_read.c (copies for the
 * rest) take.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DYNBGW_H
#define DYNBGW_H

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "pgtime.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/dest.h"
#include "utils/dsa.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "dynbgw_compat.h"

/* Longest SQL command a worker runs, in bytes, terminator included. */
#define DYNBGW_MAX_COMMAND		8192

/* How much of an error message the registry keeps. */
#define DYNBGW_MAX_ERROR		512

/* ... and a run in the history (dynbgw_runs). */
#define DYNBGW_MAX_RUN_ERROR	256

/* A run's result, a command tag with its row count: "DELETE 1234". */
#define DYNBGW_MAX_RESULT		64

/*
 * How far ahead a schedule's next time is looked for: the Gregorian
 * calendar repeats itself, weekdays and leap days included, every 400
 * years.
 */
#define DYNBGW_SCHEDULE_HORIZON_YEARS	400

/* Longest cron expression, and time zone name, terminator included. */
#define DYNBGW_MAX_SCHEDULE		128
#define DYNBGW_MAX_TIMEZONE		(TZ_STRLEN_MAX + 1)

/* Upper bound of dynbgw.history_size. */
#define DYNBGW_MAX_HISTORY		1000000

/* Upper bound of dynbgw.max_workers. */
#define DYNBGW_MAX_WORKERS_LIMIT	1024

/*
 * A restartable worker that exits abnormally this many times in a row
 * without completing a run is not restarted again.
 */
#define DYNBGW_MAX_FAILED_STARTS	5

/* Upper bound of dynbgw_launch's retry. */
#define DYNBGW_MAX_RETRY		1000

/* Upper bound of dynbgw.max_queued_tasks, and so of a pool's queue_size. */
#define DYNBGW_MAX_QUEUED_TASKS	1000000

/* How many of the last tasks submitted are known by their outcome at least. */
#define DYNBGW_TASK_OUTCOMES	65536

typedef enum DynbgwState
{
	DYNBGW_FREE = 0,			/* no worker has this number */
	DYNBGW_STARTING,			/* launched, not yet connected and ready */
	DYNBGW_IDLE,				/* ready, waiting for its next run */
	DYNBGW_RUNNING,				/* running its command or entry point */
	DYNBGW_STOPPING,			/* asked to stop, not yet gone */
	DYNBGW_RESTARTING,			/* died; the postmaster restarts it soon */
	DYNBGW_EXITED				/* gone while its launcher still waited; the
								 * launcher reads the outcome and decides */
} DynbgwState;

typedef enum DynbgwKind
{
	DYNBGW_KIND_SQL,			/* dynbgw's own worker running a command */
	DYNBGW_KIND_FUNCTION		/* a library's entry point */
} DynbgwKind;

/* A parsed cron expression: the values each field allows, as bits. */
typedef struct DynbgwSchedule
{
	uint64		seconds;
	uint64		minutes;
	uint32		hours;
	uint32		days;			/* bits 1 to 31 */
	uint16		months;			/* bits 1 to 12 */
	uint8		weekdays;		/* bit 0: Sunday */
	bool		days_restricted;	/* the field does not begin with * */
	bool		weekdays_restricted;
	bool		frequent;		/* seconds, minute or hour begins with *: due
								 * at both passes of a repeated hour */
} DynbgwSchedule;

/* What a worker is: given at launch, never changed afterwards. */
typedef struct DynbgwDefinition
{
	DynbgwKind	kind;
	Oid			dboid;			/* InvalidOid: not connected to a database */
	Oid			roleoid;

	/* On what its authority rests (dynbgw_authority.c). */
	Oid			launcher_roleoid;	/* who launched it */
	Oid			launch_dboid;	/* where, and with which function */
	Oid			launch_funcoid;
	bool		via_grant_role; /* the launcher's right came from dynbgw_user */
	bool		unprivileged;	/* launched by a non-superuser */

	int64		naptime_us;
	Interval	naptime;		/* as given, for display */
	bool		has_schedule;	/* runs on a cron schedule, not naptime */
	DynbgwSchedule schedule;
	char		schedule_text[DYNBGW_MAX_SCHEDULE];
	char		timezone[DYNBGW_MAX_TIMEZONE];	/* of the schedule */
	int			encoding;		/* of the command: its database's */
	int64		max_runs;		/* exit after this many runs; 0: never */
	int			restart_s;		/* restart delay after a crash, or
								 * BGW_NEVER_RESTART */
	int			run_timeout_ms; /* 0: none */
	int			retry;			/* a failed run is run again this often */
	int64		retry_delay_us; /* before the first retry; then doubled */
	bool		keep_result;	/* keep the rows of each run's last statement */
	/* A pool's worker: the pool, as a worker brought back can remake it. */
	uint64		pool_id;		/* 0: not a pool's */
	char		pool_name[NAMEDATALEN];
	int			pool_size;
	int			pool_queue_size;
	int64		arg;			/* function kind: the entry point's argument */
	char		library[MAXPGPATH];
	char		function[BGW_MAXLEN];
	char		command[DYNBGW_MAX_COMMAND];	/* empty: an idle worker */
} DynbgwDefinition;

/* How a launch ended (dynbgw_wait). */
typedef enum DynbgwOutcome
{
	DYNBGW_OUTCOME_NONE = 0,	/* not ended yet */
	DYNBGW_OUTCOME_SUCCEEDED,	/* after its runs; the last one succeeded */
	DYNBGW_OUTCOME_FAILED,		/* last run failed, or it could not start,
								 * ended abnormally, gave up restarting or
								 * lost its authority */
	DYNBGW_OUTCOME_STOPPED		/* stopped */
} DynbgwOutcome;

/*
 * The end of the last launch of a number that ended.  Kept apart from what
 * the next launch writes, so that a waiter never misses the end it waits
 * for, however soon the number is launched again.
 */
typedef struct DynbgwEnding
{
	uint64		generation;		/* 0: none since the server started */
	DynbgwOutcome outcome;
	int			pid;			/* its last process */
	Oid			roleoid;
	int64		runs;
	int64		failures;
	TimestampTz ended_at;
	int			error_code;		/* the last failure */
	int			error_encoding;
	char		error[DYNBGW_MAX_ERROR];
	char		result[DYNBGW_MAX_RESULT];	/* of the last run */
} DynbgwEnding;

typedef enum DynbgwRunStatus
{
	DYNBGW_RUN_SUCCEEDED,
	DYNBGW_RUN_FAILED,
	DYNBGW_RUN_CANCELLED,		/* by pg_cancel_backend */
	DYNBGW_RUN_STOPPED			/* cut short by a stop */
} DynbgwRunStatus;

/* What started a run. */
typedef enum DynbgwTrigger
{
	DYNBGW_TRIGGER_SCHEDULE,	/* it was due: naptime or cron schedule */
	DYNBGW_TRIGGER_WAKE,		/* dynbgw_wake() */
	DYNBGW_TRIGGER_RETRY,		/* the attempt before it failed */
	DYNBGW_TRIGGER_TASK			/* a pool's worker took a task */
} DynbgwTrigger;

/* One run's attempt, in the history ring (dynbgw_runs). */
typedef struct DynbgwRun
{
	int			n;
	uint64		launch;			/* the launch's generation */
	int			pid;
	Oid			roleoid;
	Oid			dboid;
	TimestampTz started;
	TimestampTz finished;
	DynbgwRunStatus status;
	DynbgwTrigger trigger;
	int			attempt;		/* 1, then 2 for its first retry, ... */
	int			error_code;
	int			encoding;		/* of message */
	char		message[DYNBGW_MAX_RUN_ERROR];
	char		result[DYNBGW_MAX_RESULT];
} DynbgwRun;

/*
 * A worker number's launch.  Only the transitions of dynbgw_slot.c change
 * it, with the registry lock held; dynbgw_slot_read.c copies it for others.
 */
typedef struct DynbgwSlot
{
	/* Written when the slot takes a launch (reserve, adopt). */
	uint64		generation;		/* identifies one launch of this number */
	DynbgwDefinition def;
	TimestampTz launched_at;
	int			launched_by_pid;

	/* Changed as the launch goes on. */
	DynbgwState state;
	int			pid;			/* 0 until the worker claims the slot and
								 * again once it is gone */
	int			ready_pid;		/* the worker's PID once it was ready */
	int			last_pid;		/* the PID of the last worker that left */
	bool		stop_requested;
	bool		restart_after_exit; /* EXITED: what the worker wanted next */
	bool		exit_failed;	/* EXITED: it ended abnormally */
	int			failed_starts;	/* abnormal exits in a row without a
								 * successful run */
	bool		have_handle;	/* false after a crash-restart */
	DynbgwHandle bgw_handle;	/* the postmaster's registration */
	Latch	   *launcher_latch; /* set on the worker's progress; NULL once
								 * the launcher no longer waits */
	int64		runs;
	int64		failures;
	TimestampTz last_started;	/* 0: not yet */
	TimestampTz last_finished;
	int64		last_duration_us;
	TimestampTz next_run;		/* 0: none planned */
	int			error_code;		/* SQLSTATE of last_error */
	int			error_encoding; /* of last_error */
	char		last_error[DYNBGW_MAX_ERROR];
	bool		last_run_failed;
	char		last_result[DYNBGW_MAX_RESULT];
	DynbgwTrigger last_trigger; /* of the current or last attempt */
	int			last_attempt;

	/*
	 * Set by dynbgw_wake() without the lock and cleared when a run starts:
	 * wakes before a run starts are all taken by it.  The worker's latch is
	 * set after it, as long as the worker holds the slot.
	 */
	pg_atomic_uint32 wake_pending;
	Latch	   *worker_latch;

	/*
	 * Written whenever a launch of this number ends, the one before kept
	 * too, for a waiter that a quick relaunch and end left behind.
	 */
	DynbgwEnding ended;
	DynbgwEnding ended_before;

	/*
	 * Broadcast when the worker becomes ready and when it is gone, and when a
	 * launch ends.
	 */
	ConditionVariable state_cv;
} DynbgwSlot;

/*
 * Where the kept results are (dynbgw_result_store.c): a DSA area made on
 * first use, holding a directory of results and the results' rows.
 */
/* Where a DSA area made on first use is, once it is made. */
typedef struct DynbgwAreaAnchor
{
	bool		made;
	dsa_handle	handle;
} DynbgwAreaAnchor;

typedef struct DynbgwResultStore
{
	LWLock		lock;			/* guards the rest and the directory */
	DynbgwAreaAnchor area;
	dsa_pointer directory;		/* DynbgwResultEntry[directory_size] */
	int			directory_size;
	int			entries;		/* of the directory that are used */
	uint64		total;			/* bytes of the results kept and staged */
	uint64		last_version;
} DynbgwResultStore;

/*
 * Pools and their tasks (dynbgw_task_queue.c): each pool's queue in a DSA
 * area made on the first pool, the pools, their workers and the history of
 * ended tasks in the registry.  The lock guards all of it.
 */
typedef struct DynbgwTaskBoard
{
	LWLock		lock;
	DynbgwAreaAnchor area;
	uint64		first_pool;		/* pools before it were made before the
								 * registry, and are remade by their workers */
	uint64		last_pool;		/* pool ids, from the registry's creation
								 * time, as generations */
	uint64		last_task;		/* task ids, likewise */
	uint64		tasks_recorded; /* the next ended task goes to this %
								 * history_size */
	int64		queued;			/* tasks waiting in all queues */
	ConditionVariable changed;	/* a task ended, or left a queue */
} DynbgwTaskBoard;

typedef struct DynbgwRegistry
{
	uint32		magic;			/* DYNBGW_REGISTRY_MAGIC */
	uint32		slot_size;		/* sizeof(DynbgwSlot) of its creator */
	LWLock		lock;
	int			tranche_id;
	int			capacity;		/* dynbgw.max_workers when it was created */
	int			history_size;	/* dynbgw.history_size when it was created */
	uint64		last_generation;
	uint64		runs_recorded;	/* the next run goes to this % history_size */
	DynbgwResultStore results;
	DynbgwTaskBoard tasks;
	DynbgwSlot	slots[FLEXIBLE_ARRAY_MEMBER];

	/*
	 * followed by DynbgwRun[history_size] (dynbgw_history()), and by the
	 * pools, their workers and the ended tasks of dynbgw_task_queue.c
	 */
} DynbgwRegistry;

/* The registry's size, fixed when it is created. */
typedef struct DynbgwShape
{
	int			capacity;
	int			history_size;
} DynbgwShape;

/*
 * Identifies the registry's layout.  A library of another layout, installed
 * while the server runs, must not read the registry its predecessor made.
 */
#define DYNBGW_REGISTRY_MAGIC	0x44595238	/* "DYR8" */

/* What the launcher passes to a worker in bgw_extra. */
typedef struct DynbgwWorkerArgs
{
	int			n;
	uint64		generation;
} DynbgwWorkerArgs;

/*
 * A restartable worker's definition is also kept in a file, because a
 * crash-restart of the server empties the registry while the postmaster
 * still restarts the worker.  One file per launch (worker_N_GENERATION), so
 * that removing one launch's file never touches the next one's; files of an
 * earlier server life are removed when the registry is created.
 */
typedef struct DynbgwSavedWorker
{
	uint32		magic;
	int			postmaster_pid; /* the server life it belongs to */
	TimestampTz postmaster_started;
	uint64		generation;
	TimestampTz launched_at;
	int			launched_by_pid;
	DynbgwDefinition def;
} DynbgwSavedWorker;

#define DYNBGW_SAVED_MAGIC	0x44594e37	/* "DYN7" */
#define DYNBGW_SAVED_DIR	"pg_dynbgw"

/*
 * Milliseconds from now until a deadline, between 0 and INT_MAX, the most
 * that latch and condition variable waits accept; DT_NOEND gives INT_MAX.
 * Not every minor release's TimestampDifferenceMilliseconds() clamps.
 */
static inline long
dynbgw_ms_until(TimestampTz deadline)
{
	TimestampTz now = GetCurrentTimestamp();

	if (deadline <= now)
		return 0;
	if (deadline - now >= (TimestampTz) INT_MAX * 1000)
		return INT_MAX;
	return (long) ((deadline - now + 999) / 1000);
}

/* What a worker counts against; see dynbgw_authority.c. */
typedef enum DynbgwLimit
{
	DYNBGW_LIMIT_NONE,
	DYNBGW_LIMIT_ROLE,			/* the role's CONNECTION LIMIT */
	DYNBGW_LIMIT_DATABASE,		/* the database's CONNECTION LIMIT */
	DYNBGW_LIMIT_HEADROOM		/* dynbgw.reserved_worker_processes */
} DynbgwLimit;

typedef struct DynbgwLimits
{
	Oid			roleoid;
	Oid			dboid;
	int			role_limit;		/* -1: none */
	int			role_sessions;	/* its connections, workers not counted */
	int			db_limit;		/* -1: none */
	int			db_sessions;
	bool		unprivileged;	/* counts against the headroom */
	int			unprivileged_max;
} DynbgwLimits;

/* dynbgw_registry.c */
extern int	dynbgw_max_workers;
extern int	dynbgw_history_size;
extern DynbgwRegistry *dynbgw_reg;	/* once dynbgw_registry() found it */

extern DynbgwRegistry *dynbgw_registry(void);
extern DynbgwRun *dynbgw_history(DynbgwRegistry *reg);
extern void *dynbgw_registry_tail(DynbgwRegistry *reg);
extern Size dynbgw_registry_tail_size(int capacity, int history_size);
extern dsa_area *dynbgw_area_map(LWLock *lock, DynbgwAreaAnchor *anchor,
								 dsa_area **mapping, bool create);
extern int	dynbgw_clip_length(const char *message, int size);
extern void dynbgw_clip(char *dest, const char *message, int size);

/* dynbgw_worker_file.c */
extern void dynbgw_save_worker(int n, uint64 generation,
							   TimestampTz launched_at,
							   const DynbgwDefinition *def);
extern bool dynbgw_load_worker(int n, uint64 generation,
							   DynbgwSavedWorker *saved);
extern void dynbgw_forget_worker(int n, uint64 generation);
extern void dynbgw_remove_stale_saved(void);

/*
 * dynbgw_slot.c: every change of a slot's state, as a named transition;
 * dynbgw_slot_read.c: every read of the registry.  See docs/design.md.
 */

/* What a slot holds, as its readers see it. */
typedef struct DynbgwOccupant
{
	uint64		generation;		/* of the launch it holds or held last */
	DynbgwState state;
	DynbgwKind	kind;
	int			pid;			/* 0: no process */
	Oid			roleoid;
	Oid			launcher_roleoid;
	bool		stop_requested;
	bool		have_handle;	/* of the launch's registration */
	bool		launcher_waits;
} DynbgwOccupant;

/* What a transition leaves its caller to do once the lock is released. */
typedef struct DynbgwAfter
{
	int			n;
	uint64		generation;
	int			kill_errno;		/* a stop's SIGTERM failed with this */
	int			signalled_pid;	/* ... sent to this process */
	bool		forget_file;	/* remove the launch's saved definition */
	bool		end_registration;	/* end the launch's registration ... */
	bool		have_handle;	/* ... if its handle is known: */
	DynbgwHandle handle;
	bool		wake_waiters;	/* broadcast the slot's condition variable */
	Latch	   *launcher_latch; /* set it: a launcher waits */
} DynbgwAfter;

/* How a launch stands, as its launcher finds it. */
typedef enum DynbgwLaunchStatus
{
	DYNBGW_LAUNCH_WAITING,		/* not ready, not gone */
	DYNBGW_LAUNCH_READY,		/* the worker is ready: the launch succeeded */
	DYNBGW_LAUNCH_GONE,			/* the worker is gone: see DynbgwSettled */
	DYNBGW_LAUNCH_LOST			/* the slot holds another launch */
} DynbgwLaunchStatus;

typedef struct DynbgwSettled
{
	int			ready_pid;		/* 0: it never was ready */
	bool		stopped;		/* a stop was asked for */
	bool		restarts;		/* GONE: the postmaster restarts it */
	int			error_code;		/* GONE: its last error */
	int			error_encoding;
	char		error[DYNBGW_MAX_ERROR];
} DynbgwSettled;

/* A worker's exit, as it reports it, and what came of it. */
typedef struct DynbgwExit
{
	bool		failed;			/* an abnormal exit */
	bool		stopped;		/* this process had SIGTERM */
	bool		completed_run;	/* this process completed a run */
	bool		authority_revoked;
	int			error_code;		/* its last error ("": none) */
	const char *error;
	bool		gave_up;		/* out: it is not restarted after all */
	int			failed_starts;	/* out: abnormal exits in a row */
} DynbgwExit;

/* How the launch a dynbgw_wait() waits for stands. */
typedef enum DynbgwEndStatus
{
	DYNBGW_END_NOT_YET,			/* it runs */
	DYNBGW_END_KNOWN,			/* it ended, or none runs: the last end */
	DYNBGW_END_LOST				/* later ends have overwritten its end */
} DynbgwEndStatus;

/*
 * Whether a launch in this state takes a wake: its worker is or is about
 * to be ready, and no stop was asked for.  A wake starts no worker.
 */
static inline bool
dynbgw_state_wakeable(DynbgwState state, bool stop_requested)
{
	return !stop_requested &&
		(state == DYNBGW_STARTING || state == DYNBGW_IDLE ||
		 state == DYNBGW_RUNNING);
}

/*
 * For dynbgw_slot.c and dynbgw_slot_read.c only: no other file takes the
 * registry lock.
 */
static inline DynbgwSlot *
dynbgw_slot_at(int n)
{
	DynbgwRegistry *reg = dynbgw_registry();

	Assert(n >= 1 && n <= reg->capacity);
	return &reg->slots[n - 1];
}

static inline void
dynbgw_lock(LWLockMode mode)
{
	LWLockAcquire(&dynbgw_reg->lock, mode);
}

static inline void
dynbgw_unlock(void)
{
	LWLockRelease(&dynbgw_reg->lock);
}

extern void dynbgw_occupant_locked(const DynbgwSlot *slot,
								   DynbgwOccupant *occupant);
extern DynbgwLimit dynbgw_count_limits_locked(const DynbgwLimits *limits,
											  int exclude_n);
extern void dynbgw_ending_locked(const DynbgwSlot *slot,
								 DynbgwOutcome outcome, int pid,
								 TimestampTz ended_at, DynbgwEnding *ending);


/* the launcher's transitions */
extern uint64 dynbgw_slot_reserve(int n, const DynbgwDefinition *def,
								  const DynbgwLimits *limits,
								  TimestampTz launched_at,
								  DynbgwLimit *exceeded,
								  DynbgwOccupant *occupant);
extern void dynbgw_slot_registered(int n, uint64 generation,
								   const BackgroundWorkerHandle *handle);
extern DynbgwLaunchStatus dynbgw_slot_settle(int n, uint64 generation,
											 bool process_gone,
											 DynbgwSettled *settled,
											 DynbgwAfter *after);
extern void dynbgw_slot_abandon(int n, uint64 generation, DynbgwAfter *after);

/* the worker's transitions */
extern bool dynbgw_slot_claim(int n, uint64 generation,
							  const DynbgwSavedWorker *saved,
							  DynbgwDefinition *def, int64 *runs);
extern bool dynbgw_slot_ready(int n, DynbgwState state, TimestampTz next_run,
							  const DynbgwHandle *handle, DynbgwAfter *after);
extern void dynbgw_slot_run_start(int n, TimestampTz started,
								  DynbgwTrigger trigger, int attempt);
extern void dynbgw_slot_run_end(int n, TimestampTz started,
								TimestampTz finished, TimestampTz next_run,
								DynbgwRunStatus status, bool final,
								const ErrorData *edata, const char *result);
extern void dynbgw_slot_lose_authority(int n, const ErrorData *edata);
extern bool dynbgw_slot_exit(int n, uint64 generation, DynbgwExit *report,
							 DynbgwAfter *after);

/* the stopper's transition */
extern bool dynbgw_slot_request_stop(int n, uint64 generation,
									 DynbgwOccupant *was, DynbgwAfter *after);

/* the waker's transition */
extern bool dynbgw_slot_wake(int n, uint64 generation);

extern void dynbgw_after_unlock(const DynbgwAfter *after);

/* dynbgw_slot_read.c */
extern const char *dynbgw_state_name(DynbgwState state);
extern ConditionVariable *dynbgw_slot_cv(int n);
extern void dynbgw_slot_look(int n, DynbgwOccupant *occupant);
extern bool dynbgw_slot_occupant(int n, DynbgwOccupant *occupant);
extern int	dynbgw_slot_pool_workers(uint64 pool_id, int *numbers,
									 uint64 *generations);
extern int	dynbgw_slot_find_pid(int pid, DynbgwOccupant *occupant,
								 bool *was_ours);
extern bool dynbgw_slot_copy(int n, DynbgwSlot *copy);
extern bool dynbgw_slot_handle(int n, uint64 generation, DynbgwHandle *handle);
extern bool dynbgw_slot_woken(int n);
extern bool dynbgw_slot_moved_on(int n, uint64 generation, int pid,
								 bool launch_decided);
extern DynbgwEndStatus dynbgw_slot_ending(int n, uint64 *waited,
										  DynbgwEnding *ending);
extern DynbgwLimit dynbgw_slot_limits(const DynbgwLimits *limits,
									  int exclude_n);
extern uint64 dynbgw_history_span(int *count);
extern int	dynbgw_history_copy(uint64 from, uint64 to, DynbgwRun *runs);

/* dynbgw_at_commit.c: what a transaction asks to happen at its commit */
typedef struct DynbgwAtCommit DynbgwAtCommit;

typedef struct DynbgwAtCommitKind
{
	const char *prepare_refused;	/* the error PREPARE TRANSACTION gets */
	bool		one_per_object; /* a request replaces one of another item */
	/* At commit (commit true), or as the request ends otherwise. */
	void		(*end) (const DynbgwAtCommit *request, bool commit);
} DynbgwAtCommitKind;

struct DynbgwAtCommit
{
	const DynbgwAtCommitKind *kind;
	uint64		object;			/* a worker number; a pool */
	uint64		item;			/* a launch's generation; a task */
	int			nest_level;		/* of the subtransaction that asked */
};

extern void dynbgw_at_commit(const DynbgwAtCommitKind *kind, uint64 object,
							 uint64 item);
extern bool dynbgw_at_commit_holds(const DynbgwAtCommitKind *kind,
								   uint64 item);

/* dynbgw_command.c */
extern void dynbgw_command_check(List *parsetrees);
extern void dynbgw_command_run(const DynbgwDefinition *def, int n,
							   Oid submitter, DestReceiver *keeper,
							   char *result);
extern void dynbgw_command_recover(void);
extern void dynbgw_command_reset(const DynbgwDefinition *def);

/* dynbgw_result_store.c: results kept in shared memory */

/*
 * What a kept result is of: a worker number, and task 0 for the worker's
 * own runs (other tasks: results of many commands under one number).
 */
typedef struct DynbgwResultKey
{
	int			n;
	uint64		task;
} DynbgwResultKey;

/* A kept result, without its data. */
typedef struct DynbgwResultInfo
{
	DynbgwResultKey key;
	uint64		generation;		/* of the launch whose run kept it */
	uint64		version;		/* changes whenever its data does */
	Oid			roleoid;		/* whose data it is */
	Oid			dboid;			/* where it was made */
	TimestampTz kept_at;
	int64		rows;
	int			natts;
	int			encoding;		/* of its names: its database's */
	int			value_encoding; /* of its values: its client encoding */
	Size		size;			/* of its data */
} DynbgwResultInfo;

/* Longest type name a result keeps for a column, terminator included. */
#define DYNBGW_MAX_TYPE_NAME	(2 * NAMEDATALEN + 32)

/*
 * A result's data: natts DynbgwResultColumn, then its rows, each an int16
 * count of its values and each value an int32 length (-1: NULL) and that
 * many bytes, unaligned.
 */
typedef struct DynbgwResultColumn
{
	Oid			typid;
	int32		typmod;
	bool		binary;			/* in the type's send format; else in its
								 * output format (types without one) */
	char		name[NAMEDATALEN];
	char		typname[DYNBGW_MAX_TYPE_NAME];	/* as its database names it */
} DynbgwResultColumn;

extern int	dynbgw_max_result_size;
extern int	dynbgw_max_total_result_size;
extern void dynbgw_result_stage(const DynbgwResultInfo *info, const char *data);
extern void dynbgw_result_publish(void);
extern void dynbgw_result_unstage(void);
extern bool dynbgw_result_drop(const DynbgwResultKey *key, uint64 generation,
							   uint64 version);
extern bool dynbgw_result_get(const DynbgwResultKey *key, uint64 version,
							  DynbgwResultInfo *info, char *data, Size len);
extern DynbgwResultInfo *dynbgw_result_list(int *count);

/* dynbgw_result.c */
extern void dynbgw_result_check_launch(int n, uint64 generation);

/* dynbgw_result_keep.c */
extern DestReceiver *dynbgw_result_receiver(const DynbgwResultKey *key,
											uint64 generation,
											const DynbgwDefinition *def);
extern void dynbgw_result_keep(DestReceiver *receiver);

/* dynbgw_task_queue.c: pools, their queues and their tasks */

typedef enum DynbgwTaskState
{
	DYNBGW_TASK_PENDING,		/* submitted in a transaction yet to commit */
	DYNBGW_TASK_QUEUED,
	DYNBGW_TASK_RUNNING,
	DYNBGW_TASK_ENDED
} DynbgwTaskState;

/* A task as dynbgw_tasks shows it, and as the history keeps one that ended. */
typedef struct DynbgwTaskRecord
{
	uint64		id;
	DynbgwTaskState state;
	char		pool[NAMEDATALEN];
	Oid			roleoid;		/* the pool's */
	Oid			dboid;
	Oid			submitter;
	int			priority;
	bool		keep_result;
	int			n;				/* the worker that ran it; 0: none */
	int			pid;
	TimestampTz submitted;
	TimestampTz started;		/* 0: it never started */
	TimestampTz finished;
	DynbgwRunStatus outcome;	/* once ended */
	int			error_code;
	int			encoding;		/* of message */
	char		message[DYNBGW_MAX_RUN_ERROR];
	char		result[DYNBGW_MAX_RESULT];
} DynbgwTaskRecord;

/* A pool, as its readers see it. */
typedef struct DynbgwPoolInfo
{
	uint64		id;
	char		name[NAMEDATALEN];
	int			size;
	int			queue_size;
	Oid			dboid;
	Oid			roleoid;
	Oid			owner;			/* who made it */
	Oid			made_in;		/* from which database: where it is saved */
	int			encoding;		/* of its database */
	bool		dropping;
	bool		failed;			/* its workers lost their authority */
	int			waiting;		/* tasks pending or queued */
} DynbgwPoolInfo;

/* What a submission asks for. */
typedef struct DynbgwTaskSpec
{
	const char *command;		/* in the encoding of the pool's database */
	Oid			submitter;
	int			priority;
	bool		keep_result;
	int			run_timeout_ms;
	bool		pending;		/* queued when its transaction commits */
} DynbgwTaskSpec;

/* What a pool's worker takes to run a task. */
typedef struct DynbgwTaskTaken
{
	uint64		id;
	Oid			submitter;
	bool		keep_result;
	int			run_timeout_ms;
	char		command[DYNBGW_MAX_COMMAND];
} DynbgwTaskTaken;

typedef enum DynbgwQueueStatus
{
	DYNBGW_QUEUE_DONE,
	DYNBGW_QUEUE_FULL,			/* the pool's queue, or all queues */
	DYNBGW_QUEUE_NO_POOL,		/* dropped, or being dropped */
	DYNBGW_QUEUE_EXISTS,		/* a pool of the name exists */
	DYNBGW_QUEUE_TOO_MANY,		/* as many pools as worker numbers exist */
	DYNBGW_QUEUE_NOTHING		/* a worker: no task waits */
} DynbgwQueueStatus;

extern int	dynbgw_max_queued_tasks;
extern uint64 dynbgw_pool_add(DynbgwPoolInfo *pool, DynbgwQueueStatus *status);
extern bool dynbgw_pool_get(const char *name, uint64 id, DynbgwPoolInfo *pool);
extern DynbgwPoolInfo *dynbgw_pool_list(int *count);
extern void dynbgw_pool_close(uint64 id, const ErrorData *edata);
extern void dynbgw_pool_remove(uint64 id);
extern uint64 dynbgw_task_add(uint64 pool_id, const DynbgwTaskSpec *spec,
							  DynbgwQueueStatus *status);
extern void dynbgw_task_settle(uint64 pool_id, uint64 id, bool commit);
extern bool dynbgw_task_find(uint64 id, DynbgwTaskRecord *record);

/* Where dynbgw_task_list_next() goes on from; all zero to begin. */
typedef struct DynbgwTaskCursor
{
	int			pool;			/* the queue of this pool ... */
	int			position;		/* ... from this task */
	int			member;			/* then the running task of this member */
	bool		in_history;		/* then the ended tasks ... */
	uint64		ended;			/* ... from this one */
} DynbgwTaskCursor;

extern int	dynbgw_task_list_next(DynbgwTaskCursor *cursor,
								  DynbgwTaskRecord *records, int max);
extern bool dynbgw_task_cancel(uint64 id);
extern ConditionVariable *dynbgw_tasks_cv(void);

/* dynbgw_pool.c, dynbgw_task.c */
extern void dynbgw_pool_of_name(const char *name, DynbgwPoolInfo *pool);
extern bool dynbgw_pool_is(const DynbgwPoolInfo *pool,
						   const DynbgwPoolInfo *asked);
extern uint64 dynbgw_task_arg(FunctionCallInfo fcinfo, int argno);

/* a pool's worker */
extern bool dynbgw_pool_join(int n, const DynbgwDefinition *def);
extern DynbgwQueueStatus dynbgw_task_take(int n, DynbgwTaskTaken *taken);
extern void dynbgw_task_end(int n, DynbgwRunStatus outcome, int error_code,
							const char *message, const char *result);
extern void dynbgw_pool_leave(int n);

/* dynbgw_schedule.c */
extern void dynbgw_schedule_parse(const char *expr, DynbgwSchedule *schedule);
extern TimestampTz dynbgw_schedule_next(const DynbgwSchedule *schedule,
										pg_tz *tz, TimestampTz after);
extern pg_tz *dynbgw_timezone_arg(FunctionCallInfo fcinfo, int argno,
								  char *name);

/* dynbgw.c: argument checks the SQL functions share */
extern void dynbgw_require(FunctionCallInfo fcinfo, int argno,
						   const char *name);
extern int	dynbgw_number_arg(FunctionCallInfo fcinfo, int argno,
							  bool launching);
extern int64 dynbgw_interval_arg(FunctionCallInfo fcinfo, int argno,
								 const char *name);
extern Oid	dynbgw_role_arg(FunctionCallInfo fcinfo, int argno);
extern Oid	dynbgw_database_arg(FunctionCallInfo fcinfo, int argno,
								Oid if_null, Oid roleoid);
extern int	dynbgw_database_encoding(Oid dboid);
extern int	dynbgw_run_timeout_arg(FunctionCallInfo fcinfo, int argno);
extern char *dynbgw_command_text(text *arg, int encoding);

/* dynbgw_status.c */
extern char *dynbgw_text_for_session(const char *str, int encoding);
extern bool dynbgw_may_see(Oid roleoid);
extern const char *dynbgw_run_status_name(DynbgwRunStatus status);
extern Datum dynbgw_name_datum(const char *str);

/* dynbgw_launch_protocol.c */
typedef enum DynbgwIfRunning
{
	DYNBGW_IF_RUNNING_ERROR,
	DYNBGW_IF_RUNNING_SKIP,
	DYNBGW_IF_RUNNING_REPLACE
} DynbgwIfRunning;

extern bool dynbgw_launch_was_stopped;
extern int	dynbgw_launch_worker(int n, const DynbgwDefinition *def,
								 DynbgwIfRunning if_running,
								 int64 wait_for_slot_us,
								 FunctionCallInfo persist);

/* dynbgw_stop_protocol.c */
extern void dynbgw_check_may_signal(int n, const DynbgwOccupant *occupant,
									const char *action);
extern bool dynbgw_may_stop_for(Oid roleoid, Oid who);
extern bool dynbgw_wait_slot(int n, uint64 generation, int pid,
							 bool launch_decided, TimestampTz deadline);
extern bool dynbgw_stop_slot(int n, uint64 generation, TimestampTz deadline);

/* dynbgw_persist.c: a row of dynbgw_definitions, its columns in this order */
typedef enum DynbgwSavedColumn
{
	DYNBGW_SAVED_N,
	DYNBGW_SAVED_OWNER,
	DYNBGW_SAVED_COMMAND,
	DYNBGW_SAVED_NAPTIME,
	DYNBGW_SAVED_SCHEDULE,
	DYNBGW_SAVED_TIMEZONE,
	DYNBGW_SAVED_DATABASE,
	DYNBGW_SAVED_ROLE,
	DYNBGW_SAVED_RUNS,
	DYNBGW_SAVED_RESTART,
	DYNBGW_SAVED_RUN_TIMEOUT,
	DYNBGW_SAVED_RETRY,			/* since 1.2 */
	DYNBGW_SAVED_RETRY_DELAY,
	DYNBGW_SAVED_KEEP_RESULT,	/* since 1.3 */
	DYNBGW_SAVED_COLUMNS
} DynbgwSavedColumn;

/*
 * The columns from the first that version 1.1.1's table lacks on, which a
 * new library meets until ALTER EXTENSION dynbgw UPDATE (read as NULL, the
 * default), are dynbgw_launch's arguments from this one on, in order: a
 * launch of an earlier version has fewer of them.
 */
#define DYNBGW_SAVED_FIRST_OPTIONAL DYNBGW_SAVED_RETRY
#define DYNBGW_LAUNCH_FIRST_OPTIONAL_ARG 13
#define DYNBGW_LAUNCH_ARG_OF(col) \
	(DYNBGW_LAUNCH_FIRST_OPTIONAL_ARG + (col) - DYNBGW_SAVED_FIRST_OPTIONAL)

typedef struct DynbgwSaved
{
	int			n;
	Oid			owner;
	Oid			role;
	Oid			database;		/* InvalidOid: the row's own database */
	Oid			table_owner;	/* of dynbgw_definitions, who may write any
								 * row if not a superuser */
	Datum		values[DYNBGW_SAVED_COLUMNS];
	bool		isnull[DYNBGW_SAVED_COLUMNS];
} DynbgwSaved;

/* A row of dynbgw_pool_definitions. */
typedef struct DynbgwSavedPool
{
	char		name[NAMEDATALEN];
	Oid			owner;
	int			size;
	Oid			database;		/* InvalidOid: the row's own database */
	Oid			role;
	int			queue_size;
	Oid			table_owner;
} DynbgwSavedPool;

extern List *dynbgw_saved_read(Oid schema);
extern List *dynbgw_saved_pools_read(Oid schema);
extern void dynbgw_persist_check(FunctionCallInfo fcinfo, int n);
extern void dynbgw_persist_save(FunctionCallInfo fcinfo, int n,
								const DynbgwDefinition *def);
extern void dynbgw_persist_forget(FunctionCallInfo fcinfo, int n);
extern void dynbgw_persist_pool_save(FunctionCallInfo fcinfo,
									 const DynbgwPoolInfo *pool);
extern void dynbgw_persist_pool_forget(FunctionCallInfo fcinfo,
									   const char *name);

/* dynbgw_restore.c */
extern char *dynbgw_restore_databases;
extern bool dynbgw_check_restore_databases(char **newval, void **extra,
										   GucSource source);
extern void dynbgw_register_restore_launcher(void);
extern Oid	dynbgw_extension_schema(Oid extoid);
extern Oid	dynbgw_launch_oid(Oid extoid, Oid schema, bool missing_ok);
extern PGDLLEXPORT void dynbgw_restore_launcher_main(Datum main_arg);
extern PGDLLEXPORT void dynbgw_restore_database_main(Datum main_arg);

/* dynbgw_authority.c */
extern int	dynbgw_reserved_worker_processes;
extern bool dynbgw_authority_revoked;
extern void dynbgw_authority_record(DynbgwDefinition *def, Oid launch_funcoid);
extern void dynbgw_authority_check(const DynbgwDefinition *def, int n);
extern bool dynbgw_may_submit(Oid submitter, Oid roleoid);
extern void dynbgw_submitter_check(Oid submitter, Oid roleoid);
extern void dynbgw_limits_prepare(DynbgwLimits *limits,
								  const DynbgwDefinition *def);
extern void dynbgw_limit_error(const DynbgwLimits *limits,
							   DynbgwLimit exceeded);

extern PGDLLEXPORT void dynbgw_worker_main(Datum main_arg);

/*
 * The SQL-callable functions: exported, which PG_FUNCTION_INFO_V1() does
 * not see to before 16 (see PGDLLEXPORT in dynbgw_compat.h).
 */
extern PGDLLEXPORT Datum dynbgw_launch(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_launch_function(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_pid(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_stop(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_wake(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_workers(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_wait(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_runs(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_next_runs(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_definitions_guard(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_restore(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_result(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_result_json(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_drop_result(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_results(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_pool_create(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_pool_drop(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_pools(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_submit(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_wait_task(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_cancel_task(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_tasks(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_task_result(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_task_result_json(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum dynbgw_drop_task_result(PG_FUNCTION_ARGS);

/*
 * What every dynamic worker of dynbgw's is: connected to a database, ended
 * by the commands that need its database to themselves (19+), started once
 * recovery is over, running one of dynbgw's own entry points.
 */
static inline void
dynbgw_worker_template(BackgroundWorker *worker, const char *function,
					   int restart_time)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION | BGWORKER_INTERRUPTIBLE;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = restart_time;
	strlcpy(worker->bgw_library_name, "dynbgw", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
}

#endif							/* DYNBGW_H */

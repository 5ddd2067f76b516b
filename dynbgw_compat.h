/*-------------------------------------------------------------------------
 *
 * dynbgw_compat.h
 *		Every difference between the PostgreSQL versions dynbgw builds on
 *		(13 to 19), in one place.
 *
 * The code is written against the newest servers' API.  For older servers
 * the macros and inline functions here map it onto what they have, and
 * what only newer servers offer is announced by a DYNBGW_HAVE_... macro.
 * Nothing else in dynbgw tests PG_VERSION_NUM.  test/compile-check compiles
 * every file against the headers of 13, 15, 17, 18 and 19.
 *
 * Included by dynbgw.h, after postgres.h.  Where a macro here takes the
 * name of a server function, the header declaring that function is
 * included first, so that its declaration is not rewritten.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DYNBGW_COMPAT_H
#define DYNBGW_COMPAT_H

#include "postmaster/bgworker.h"

/*
 * BackgroundWorkerHandle is opaque, but has been a slot number and that
 * slot's generation ever since dynamic background workers came (9.4), and it
 * means the same in every process.  dynbgw keeps a copy in its registry so
 * that any session, not only the launcher, can cancel a pending restart.
 */
typedef struct DynbgwHandle
{
	int			slot;
	uint64		generation;
} DynbgwHandle;

/* ---- changed in 14 ---- */

/* 14 renamed the predefined roles' OIDs and gave raw_parser() a mode. */
#if PG_VERSION_NUM < 140000
#include "catalog/pg_authid.h"
#include "parser/parser.h"
#define ROLE_PG_READ_ALL_STATS	DEFAULT_ROLE_READ_ALL_STATS
#define ROLE_PG_SIGNAL_BACKEND	DEFAULT_ROLE_SIGNAL_BACKENDID
#define RAW_PARSE_DEFAULT		0
#define raw_parser(str, mode)	raw_parser(str)
#endif

/*
 * load_external_function() returns PGFunction in 13 and void * from 14.
 * Converting either to an entry point through the generic function pointer
 * type keeps -Wcast-function-type quiet.
 */
#define DYNBGW_ENTRY_POINT(ptr) \
	((bgworker_main_type) (void (*) (void)) (ptr))

/* ---- changed in 15 ---- */

#if PG_VERSION_NUM < 150000
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"

/* 15 renamed EmitWarningsOnPlaceholders(), keeping the old name. */
#define MarkGUCPrefixReserved(prefix)	EmitWarningsOnPlaceholders(prefix)

/* 15 renamed pg_analyze_and_rewrite(); same arguments. */
#define pg_analyze_and_rewrite_fixedparams	pg_analyze_and_rewrite

/*
 * 15's helper that sets up a set-returning function in materialize mode:
 * check the caller takes a tuplestore, then make it and the tuple
 * descriptor in the per-query context.
 */
#define MAT_SRF_USE_EXPECTED_DESC	0x01
#define MAT_SRF_BLESS				0x02

static inline void
InitMaterializedSRF(FunctionCallInfo fcinfo, bits32 flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcontext;
	TupleDesc	tupdesc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize) ||
		((flags & MAT_SRF_USE_EXPECTED_DESC) && rsinfo->expectedDesc == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));

	oldcontext = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (flags & MAT_SRF_USE_EXPECTED_DESC)
		tupdesc = CreateTupleDescCopy(rsinfo->expectedDesc);
	else if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (flags & MAT_SRF_BLESS)
		BlessTupleDesc(tupdesc);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult =
		tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
							  false, work_mem);
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(oldcontext);
}
#endif

/* ---- changed in 16 ---- */

#if PG_VERSION_NUM < 160000
#include "catalog/pg_database.h"
#include "utils/acl.h"

/*
 * dynbgw is built with hidden symbol visibility (the Makefile), so that only
 * entry points and SQL-callable functions can be loaded by name.  From 16
 * PGDLLEXPORT marks those visible; before, it is empty.
 */
#undef PGDLLEXPORT
#define PGDLLEXPORT __attribute__((visibility("default")))

/* 16 marks the SQL-callable function itself, not only its info record. */
#include "fmgr.h"
#undef PG_FUNCTION_INFO_V1
#define PG_FUNCTION_INFO_V1(funcname) \
extern PGDLLEXPORT Datum funcname(PG_FUNCTION_ARGS); \
extern PGDLLEXPORT const Pg_finfo_record *CppConcat(pg_finfo_,funcname)(void); \
const Pg_finfo_record * \
CppConcat(pg_finfo_,funcname) (void) \
{ \
	static const Pg_finfo_record my_finfo = { 1 }; \
	return &my_finfo; \
} \
extern int no_such_variable

/* 16 declares _PG_init() in fmgr.h. */
extern PGDLLEXPORT void _PG_init(void);

/*
 * 16 replaced the per-class ACL checks by object_aclcheck().  dynbgw only
 * checks databases and functions, which the static assertion holds it to.
 */
#include "catalog/pg_proc.h"
#define object_aclcheck(classid, objectid, roleid, mode) \
	(StaticAssertExpr((classid) == DatabaseRelationId || \
					  (classid) == ProcedureRelationId, \
					  "only database and function ACL checks are mapped"), \
	 (classid) == DatabaseRelationId ? \
	 pg_database_aclcheck(objectid, roleid, mode) : \
	 pg_proc_aclcheck(objectid, roleid, mode))

/*
 * 16 split role membership into INHERIT and SET options; before, a member
 * could always SET ROLE, which is what dynbgw asks.
 */
#define member_can_set_role(member, role)	is_member_of_role(member, role)
#endif

/* ---- changed in 17 ---- */

/* 17 gave ReplicationSlotCleanup() the choice to drop synced slots only. */
#if PG_VERSION_NUM < 170000
#include "replication/slot.h"
#define ReplicationSlotCleanup(synced_only)	ReplicationSlotCleanup()
#endif

/* ---- new in 17 ---- */

#if PG_VERSION_NUM >= 170000
#include "storage/dsm_registry.h"
#include "utils/wait_event.h"

/* 17's registry of named dynamic shared memory segments. */
#define DYNBGW_HAVE_NAMED_DSM

/* 17 lets a background worker connect as a role without LOGIN. */
#define DYNBGW_CONNECT_FLAGS	BGWORKER_BYPASS_ROLELOGINCHECK
#define DYNBGW_NOLOGIN_WORKERS	true
#else
#define DYNBGW_CONNECT_FLAGS	0
#define DYNBGW_NOLOGIN_WORKERS	false
#endif

/*
 * What dynbgw's processes wait for, shown in pg_stat_activity.wait_event:
 * custom wait events on 17+, plain "Extension" before.
 */
typedef enum DynbgwWaitEvent
{
	DYNBGW_WAIT_NAP,			/* a worker sleeping between runs */
	DYNBGW_WAIT_LAUNCH,			/* a launcher waiting for its worker */
	DYNBGW_WAIT_STOP,			/* a stopper waiting for a worker to go */
	DYNBGW_WAIT_END				/* dynbgw_wait() waiting for a launch to end */
} DynbgwWaitEvent;

#if PG_VERSION_NUM >= 170000
static inline uint32
dynbgw_wait_event(DynbgwWaitEvent event)
{
	static const char *const names[] = {"DynbgwNap", "DynbgwLaunch", "DynbgwStop",
	"DynbgwWait"};
	static uint32 ids[lengthof(names)];

	/* Each process looks a name up once; it has one ID server-wide. */
	if (ids[event] == 0)
		ids[event] = WaitEventExtensionNew(names[event]);
	return ids[event];
}
#else
#define dynbgw_wait_event(event)	PG_WAIT_EXTENSION
#endif

/* ---- changed in 18 ---- */

/* 18 dropped PortalRun()'s run_once argument; dynbgw runs a portal once. */
#if PG_VERSION_NUM < 180000
#include "tcop/pquery.h"
#define PortalRun(portal, count, isTopLevel, dest, altdest, qc) \
	PortalRun(portal, count, isTopLevel, true, dest, altdest, qc)
#endif

/* ---- changed in 19 ---- */

#if PG_VERSION_NUM < 190000
#include "storage/lwlock.h"
#include "tcop/tcopprot.h"

/*
 * 19 hands signal handlers the signal's sender too (SIGNAL_ARGS), and a
 * handler that forwards to die() passes both on.
 */
#define die(signo, info)	die(signo)

/*
 * 19 keeps tranche names in shared memory, given when the tranche is made;
 * before, every process that shows the lock names its tranche itself.
 */
#define LWLockNewTrancheId(name)	LWLockNewTrancheId()
#define dynbgw_name_tranche(id, name)	LWLockRegisterTranche(id, name)

/*
 * 19 can end the background workers connected to a database that CREATE
 * DATABASE (as its template), ALTER DATABASE or DROP DATABASE must have to
 * itself, as it ends autovacuum workers.  dynbgw's workers ask for that, so
 * that a schedule never holds such a command up; it ends them as a stop
 * does.  Before 19 the command waits a few seconds for them, then fails.
 */
#define BGWORKER_INTERRUPTIBLE	0

/* 19 sets log_min_messages per process type. */
#define dynbgw_log_min_messages		log_min_messages

/* 19 types the ignoring handler as a handler. */
#define PG_SIG_IGN	SIG_IGN

/* 19 gives table_beginscan() flags for the caller's own scan options. */
#define table_beginscan(rel, snapshot, nkeys, key, flags) \
	table_beginscan(rel, snapshot, nkeys, key)
#else
#define dynbgw_name_tranche(id, name)	((void) 0)
#define dynbgw_log_min_messages		log_min_messages[MyBackendType]
#endif

/*
 * 19 passes an argument to a named segment's initializer.  17 and 18 do
 * not; there the argument waits in a static variable for the duration of
 * the call.
 */
#if PG_VERSION_NUM >= 170000 && PG_VERSION_NUM < 190000
typedef void (*DynbgwNamedInit) (void *ptr, void *arg);

static DynbgwNamedInit dynbgw_named_init;
static void *dynbgw_named_init_arg;

static inline void
dynbgw_named_init_with_arg(void *ptr)
{
	dynbgw_named_init(ptr, dynbgw_named_init_arg);
}

static inline void *
dynbgw_get_named_segment(const char *name, size_t size,
						 DynbgwNamedInit init, bool *found, void *arg)
{
	dynbgw_named_init = init;
	dynbgw_named_init_arg = arg;
	return GetNamedDSMSegment(name, size, dynbgw_named_init_with_arg, found);
}
#define GetNamedDSMSegment(name, size, init, found, arg) \
	dynbgw_get_named_segment(name, size, init, found, arg)
#endif

#endif							/* DYNBGW_COMPAT_H */

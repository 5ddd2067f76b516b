/*-------------------------------------------------------------------------
 *
 * dynbgw_compat.h
 *		Every difference between the PostgreSQL versions dynbgw builds on
 *		(13 to 19), in one place.
 *
 * Where a server function's arguments changed, dynbgw calls it through a
 * wrapper of its own name (dynbgw_portal_run() and so on), so that a call
 * never reads as one version's while another's compiles.  Names that only
 * newer servers have (InitMaterializedSRF(), object_aclcheck(), ...) are
 * provided for older ones with the newer meaning; what only newer servers
 * offer is announced by a DYNBGW_HAVE_... macro.  The few differences that
 * need code or a variable are in dynbgw_compat.c.  Nothing else in dynbgw
 * tests PG_VERSION_NUM.  test/compile-check compiles every file against the
 * headers of 13, 15, 17, 18 and 19.
 *
 * Included by dynbgw.h, after postgres.h.
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

/* 14 renamed the predefined roles' OIDs. */
#if PG_VERSION_NUM < 140000
#include "catalog/pg_authid.h"
#define ROLE_PG_READ_ALL_STATS	DEFAULT_ROLE_READ_ALL_STATS
#define ROLE_PG_SIGNAL_BACKEND	DEFAULT_ROLE_SIGNAL_BACKENDID
#endif

/*
 * 14 brought multiranges, a test for true arrays, which 13 tells by their
 * element type and varlena length, and new names for the OIDs of some
 * types for internal use.
 */
#if PG_VERSION_NUM < 140000
#include "catalog/pg_type.h"
#define TYPTYPE_MULTIRANGE		'm'
#define IsTrueArrayType(typeForm) \
	(OidIsValid((typeForm)->typelem) && (typeForm)->typlen == -1)
#define get_multirange_range(typid)	InvalidOid
#define PG_NODE_TREEOID			PGNODETREEOID
#define PG_NDISTINCTOID			PGNDISTINCTOID
#define PG_DEPENDENCIESOID		PGDEPENDENCIESOID
#define PG_MCV_LISTOID			PGMCVLISTOID
#endif

/* 14 gave raw_parser() a mode: a whole query string is the default. */
#if PG_VERSION_NUM >= 140000
#define dynbgw_raw_parse(str)	raw_parser(str, RAW_PARSE_DEFAULT)
#else
#define dynbgw_raw_parse(str)	raw_parser(str)
#endif

/*
 * load_external_function() returns PGFunction in 13 and void * from 14.
 * Converting either to an entry point through the generic function pointer
 * type keeps -Wcast-function-type quiet.
 */
#define DYNBGW_ENTRY_POINT(ptr) \
	((bgworker_main_type) (void (*) (void)) (ptr))

/* ---- changed in 15 ---- */

/*
 * Whether a type is for internal use only, its input refused (pg_node_tree
 * and the like).  15 gave these a category of their own, which "char"
 * shares though it reads back; before, they count as strings.
 */
#include "catalog/pg_type.h"
#if PG_VERSION_NUM >= 150000
#define dynbgw_type_internal(typid, category) \
	((category) == TYPCATEGORY_INTERNAL && (typid) != CHAROID)
#else
#define dynbgw_type_internal(typid, category) \
	((typid) == PG_NODE_TREEOID || (typid) == PG_NDISTINCTOID || \
	 (typid) == PG_DEPENDENCIESOID || (typid) == PG_MCV_LISTOID)
#endif

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
 * PGDLLEXPORT marks those visible, and PG_FUNCTION_INFO_V1() declares the
 * function with it; before, it is empty, and dynbgw.h declares each
 * SQL-callable function with this one.
 */
#undef PGDLLEXPORT
#define PGDLLEXPORT __attribute__((visibility("default")))

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

/*
 * Drop the temporary replication slots the session made.  17 gave
 * ReplicationSlotCleanup() the choice to drop synced slots only.
 */
#if PG_VERSION_NUM >= 170000
#define dynbgw_drop_temporary_slots()	ReplicationSlotCleanup(false)
#else
#define dynbgw_drop_temporary_slots()	ReplicationSlotCleanup()
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
	DYNBGW_WAIT_END,			/* dynbgw_wait() waiting for a launch to end,
								 * or dynbgw_wait_task() for a task */
	DYNBGW_WAIT_QUEUE			/* dynbgw_submit() waiting for room */
} DynbgwWaitEvent;

extern uint32 dynbgw_wait_event(DynbgwWaitEvent event);

/* ---- changed in 18 ---- */

/* 18 dropped PortalRun()'s run_once argument; dynbgw runs a portal once. */
#if PG_VERSION_NUM >= 180000
#define dynbgw_portal_run(portal, count, isTopLevel, dest, altdest, qc) \
	PortalRun(portal, count, isTopLevel, dest, altdest, qc)
#else
#define dynbgw_portal_run(portal, count, isTopLevel, dest, altdest, qc) \
	PortalRun(portal, count, isTopLevel, true, dest, altdest, qc)
#endif

/* ---- changed in 19 ---- */

/*
 * 19 hands signal handlers the signal's sender too (SIGNAL_ARGS): a handler
 * forwards to another (die()) what it was given.
 */
#if PG_VERSION_NUM >= 190000
#define dynbgw_forward_signal(handler) \
	handler(postgres_signal_arg, pg_siginfo)
#else
#define dynbgw_forward_signal(handler)	handler(postgres_signal_arg)
#endif

/*
 * 19 gives table_beginscan() flags for the caller's own scan options;
 * dynbgw scans a whole table with none.
 */
#if PG_VERSION_NUM >= 190000
#define dynbgw_table_beginscan(rel, snapshot) \
	table_beginscan(rel, snapshot, 0, NULL, 0)
#else
#define dynbgw_table_beginscan(rel, snapshot) \
	table_beginscan(rel, snapshot, 0, NULL)
#endif

/*
 * 19 can end the background workers connected to a database that CREATE
 * DATABASE (as its template), ALTER DATABASE or DROP DATABASE must have to
 * itself, as it ends autovacuum workers.  dynbgw's workers ask for that, so
 * that a schedule never holds such a command up; it ends them as a stop
 * does.  Before 19 the command waits a few seconds for them, then fails.
 */
#if PG_VERSION_NUM < 190000
#define BGWORKER_INTERRUPTIBLE	0
#endif

/* 19 sets log_min_messages per process type. */
#if PG_VERSION_NUM >= 190000
#define dynbgw_log_min_messages		log_min_messages[MyBackendType]
#else
#define dynbgw_log_min_messages		log_min_messages
#endif

/*
 * 19 wants a tuple descriptor built entry by entry to be finished with
 * TupleDescFinalize() before use; before, there is nothing to finish.
 */
#if PG_VERSION_NUM < 190000
#define TupleDescFinalize(tupdesc)	((void) (tupdesc))
#endif

/* 19 types the ignoring handler as a handler. */
#if PG_VERSION_NUM < 190000
#define PG_SIG_IGN	SIG_IGN
#endif

/*
 * 19 keeps tranche names in shared memory, given when the tranche is made
 * (and passes an argument to a named segment's initializer): see
 * dynbgw_compat.c.
 */
extern int	dynbgw_new_tranche(const char *name);
extern void dynbgw_name_tranche(int tranche_id, const char *name);

#ifdef DYNBGW_HAVE_NAMED_DSM
extern void *dynbgw_named_segment(const char *name, size_t size,
								  void (*init) (void *ptr, void *arg),
								  bool *found, void *arg);
#endif

#endif							/* DYNBGW_COMPAT_H */

/*-------------------------------------------------------------------------
 *
 * dynbgw_command.c
 *		What a dynbgw command may contain, and one run of it.
 *
 * A command is one or more SQL statements that a worker runs the way the
 * server runs a client's simple query: in one transaction, statement by
 * statement through portals, each statement under its own
 * statement_timeout.  The rules are checked twice: at launch, for a clear
 * error before any process exists, and again at every run, because the
 * worker splits the command with its own lexer settings
 * (standard_conforming_strings and the like), which may differ from the
 * launching session's.  A failed run is cleaned up as completely as a
 * backend cleans up after an error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* running statements */
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "storage/lock.h"
#include "utils/guc.h"
#include "utils/plancache.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"

/* what error recovery releases */
#include "jit/jit.h"
#include "replication/slot.h"

#include "dynbgw.h"

static void dynbgw_session_reset(Oid roleoid, int guc_level);
static void dynbgw_release_session_locks(void);

/*
 * Reject what a command must not do, statement by statement: control the
 * transaction that each run is, or copy to or from a client it does not
 * have (a worker's standard output and input are the postmaster's).
 */
void
dynbgw_command_check(List *parsetrees)
{
	ListCell   *lc;

	if (parsetrees == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("command must not be empty")));
	foreach(lc, parsetrees)
	{
		Node	   *stmt = lfirst_node(RawStmt, lc)->stmt;

		if (IsA(stmt, TransactionStmt))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
					 errmsg("command must not contain transaction control statements"),
					 errdetail("Each run of the command is a transaction of its own."),
					 errhint("To commit inside a run, CALL a procedure that does.")));
		if (IsA(stmt, CopyStmt) && ((CopyStmt *) stmt)->filename == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("command must not COPY to or from the client"),
					 errdetail("A worker has no client."),
					 errhint("COPY to or from a file or a program instead.")));
	}
}

/*
 * In a command of several statements, a statement that cannot run inside a
 * transaction block fails as it would in a client's multi-statement query;
 * say what the rule is and how to follow it.
 */
static void
dynbgw_statement_error_callback(void *arg)
{
	if (geterrcode() == ERRCODE_ACTIVE_SQL_TRANSACTION)
		errhint("The statements of a dynbgw command run in one transaction block; launch a worker with \"%s\" as its only statement.",
				(const char *) arg);
}

/*
 * What a client would be told of a statement: its command tag, with the row
 * count where the tag has one ("INSERT 0 5", "DELETE 1234", "VACUUM").
 */
static void
dynbgw_result_string(char *result, const QueryCompletion *qc)
{
	const char *tagname = GetCommandTagName(qc->commandTag);

	if (!command_tag_display_rowcount(qc->commandTag))
		strlcpy(result, tagname, DYNBGW_MAX_RESULT);
	else if (qc->commandTag == CMDTAG_INSERT)
		snprintf(result, DYNBGW_MAX_RESULT, "%s 0 " UINT64_FORMAT,
				 tagname, qc->nprocessed);
	else
		snprintf(result, DYNBGW_MAX_RESULT, "%s " UINT64_FORMAT,
				 tagname, qc->nprocessed);
}

/*
 * Run one statement of a command (its tag: tag) as exec_simple_query()
 * does, its rows going to receiver (NULL: discarded), and keep the tag with
 * its row count in result.
 */
static void
dynbgw_run_statement(RawStmt *parsetree, CommandTag tag, const char *command,
					 DestReceiver *receiver, char *result)
{
	bool		snapshot_set = false;
	List	   *querytrees;
	List	   *plantrees;
	Portal		portal;
	DestReceiver *discard = CreateDestReceiver(DestNone);
	QueryCompletion qc;

	if (analyze_requires_snapshot(parsetree))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		snapshot_set = true;
	}
	querytrees = pg_analyze_and_rewrite_fixedparams(parsetree, command,
													NULL, 0, NULL);
	plantrees = pg_plan_queries(querytrees, command,
								CURSOR_OPT_PARALLEL_OK, NULL);
	if (snapshot_set)
		PopActiveSnapshot();

	portal = CreatePortal("", true, true);
	portal->visible = false;
	PortalDefineQuery(portal, NULL, command, tag, plantrees, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	/* Rows of queries that rules add are not the statement's. */
	(void) dynbgw_portal_run(portal, FETCH_ALL, true,
							 receiver != NULL ? receiver : discard, discard,
							 &qc);
	PortalDrop(portal, false);
	dynbgw_result_string(result, &qc);
}

/*
 * Run worker n's command once, if its authority still holds (for an idle
 * worker, that check is the whole run), and put the result of its last
 * statement in result (DYNBGW_MAX_RESULT bytes).  The rows of the last
 * statement go to keeper, which keeps them once the run commits, if it is
 * not NULL; all other rows are discarded.  On error the caller recovers
 * with dynbgw_command_recover().
 */
void
dynbgw_command_run(const DynbgwDefinition *def, int n, Oid submitter,
				   DestReceiver *keeper, char *result)
{
	const char *command = def->command;
	MemoryContext run_context = CurrentMemoryContext;
	ErrorContextCallback errcallback;
	List	   *parsetrees;
	ListCell   *lc;
	bool		single;
	int			guc_level;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* Parse trees must outlive a commit inside the run. */
	MemoryContextSwitchTo(run_context);
	/* What the run sets is undone at its end from this level on. */
	guc_level = NewGUCNestLevel();
	/* The reset after each run makes sure the check is of who runs. */
	if (GetUserId() != def->roleoid || GetSessionUserId() != def->roleoid)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("dynbgw worker %d would run as another role than its own", n)));
	dynbgw_authority_check(def, n);
	if (OidIsValid(submitter))
		dynbgw_submitter_check(submitter, def->roleoid);
	result[0] = '\0';
	if (command[0] == '\0')
	{
		CommitTransactionCommand();
		return;
	}
	pgstat_report_activity(STATE_RUNNING, command);

	parsetrees = pg_parse_query(command);
	dynbgw_command_check(parsetrees);

	/*
	 * As for a client's query: several statements form an implicit
	 * transaction block, so that those that cannot run in one say so.
	 */
	single = list_length(parsetrees) == 1;
	if (!single)
		BeginImplicitTransactionBlock();

	errcallback.callback = dynbgw_statement_error_callback;
	errcallback.previous = error_context_stack;
	foreach(lc, parsetrees)
	{
		RawStmt    *parsetree = lfirst_node(RawStmt, lc);
		CommandTag	tag = CreateCommandTag(parsetree->stmt);
		bool		last = lnext(parsetrees, lc) == NULL;

		errcallback.arg = unconstify(char *, GetCommandTagName(tag));
		if (!single)
			error_context_stack = &errcallback;

		/* Armed per statement, so that a SET earlier in the command counts. */
		if (StatementTimeout > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, StatementTimeout);
		dynbgw_run_statement(parsetree, tag, command, last ? keeper : NULL,
							 result);
		disable_timeout(STATEMENT_TIMEOUT, false);
		error_context_stack = errcallback.previous;
		CommandCounterIncrement();
	}

	if (!single)
		EndImplicitTransactionBlock();
	dynbgw_session_reset(def->roleoid, guc_level);
	/* Staged while the run can still fail, published once it cannot. */
	if (keeper != NULL)
		dynbgw_result_keep(keeper);
	CommitTransactionCommand();
	if (keeper != NULL)
		dynbgw_result_publish();
	dynbgw_release_session_locks();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Nothing of a run outlives it.  Run at the end of the run's transaction,
 * once the user code that commit would run is done (deferred triggers, and
 * the closing of portals, which may queue more), so that nothing runs
 * after the reset.  It does what DISCARD ALL does, but each step costs a
 * run next to nothing unless the run left something to undo:
 *
 * - portals (held ones too), prepared statements, temporary tables (under
 *   a snapshot, as their catalog rows are deleted) and sequence caches;
 *   session advisory locks only once the run has committed
 *   (dynbgw_release_session_locks()), as others wait on them for its
 *   writes;
 * - settings, the role and the session authorization included: undone
 *   through the GUC nest level the run began with (guc_level), which costs
 *   nothing when nothing was set; when a COMMIT inside the run ended that
 *   level, or after a failed run (guc_level 0), by resetting every setting
 *   and, if who acts changed, the session authorization.
 *
 * No LISTEN can be left: a background process may not listen.  Cached
 * plans stay: they are checked against the role and search_path they were
 * made for.
 */
static void
dynbgw_session_reset(Oid roleoid, int guc_level)
{
	Oid			temp_namespace;
	Oid			temp_toast_namespace;
	int			level_now;

	do
		AfterTriggerFireDeferred();
	while (PreCommit_Portals(false));
	PortalHashTableDeleteAll();

	/* Still in the run's own level: one more above it is one above that. */
	level_now = NewGUCNestLevel();
	if (guc_level > 0 && level_now == guc_level + 1)
		AtEOXact_GUC(false, guc_level);
	else
	{
		AtEOXact_GUC(false, level_now);
		if (GetUserId() != roleoid || GetOuterUserId() != roleoid ||
			GetSessionUserId() != roleoid)
			SetPGVariable("session_authorization", NIL, false);
		ResetAllOptions();
	}

	DropAllPreparedStatements();
	GetTempNamespaceState(&temp_namespace, &temp_toast_namespace);
	if (OidIsValid(temp_namespace))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		ResetTempTableNamespace();
		PopActiveSnapshot();
	}
	ResetSequenceCaches();
}

/*
 * Session advisory locks a run took end with it, after its commit: what
 * waits on one may then see what the run wrote.
 */
static void
dynbgw_release_session_locks(void)
{
	LockReleaseSession(USER_LOCKMETHOD);
}

/* After a failed run, recovered from: the same reset, in its own transaction. */
void
dynbgw_command_reset(const DynbgwDefinition *def)
{
	StartTransactionCommand();
	dynbgw_session_reset(def->roleoid, 0);
	CommitTransactionCommand();
	dynbgw_release_session_locks();
	pgstat_report_stat(false);
}

/*
 * Undo what a failed run left, as PostgresMain() does after an error: the
 * transaction, a result staged to be kept, portals kept across a commit
 * inside the run, replication slots it acquired or made, JIT state,
 * timeouts and a pending cancel.
 * The caller has copied and flushed the error.
 */
void
dynbgw_command_recover(void)
{
	HOLD_INTERRUPTS();
	disable_all_timeouts(false);
	QueryCancelPending = false;
	AbortCurrentTransaction();
	dynbgw_result_unstage();
	PortalErrorCleanup();
	if (MyReplicationSlot != NULL)
		ReplicationSlotRelease();
	dynbgw_drop_temporary_slots();
	jit_reset_after_error();
	pgstat_report_activity(STATE_IDLE, NULL);
	RESUME_INTERRUPTS();
}

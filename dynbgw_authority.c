/*-------------------------------------------------------------------------
 *
 * dynbgw_authority.c
 *		Whether a worker may still act, and the limits it counts against.
 *
 * A worker runs for days or months, but its authority was checked at
 * launch.  So the launch records on what that authority rested (who
 * launched, and whether the right to launch came from membership in
 * dynbgw_user), and the worker checks it again before every run and at
 * every (re)start.  A full check is a handful of syscache lookups; it is
 * done again only after a change to roles, memberships, databases or
 * functions reached this process (syscache invalidation callbacks), so a run
 * usually pays one test of a flag.  A worker whose authority is gone runs
 * nothing more and ends for good.
 *
 * A worker also counts as a session of its role in its database: a launch
 * or restart that a new connection of that role could not make fails the
 * same way.  And non-superusers' workers together leave
 * dynbgw.reserved_worker_processes of max_worker_processes free.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_proc.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "dynbgw.h"

/* The role whose members may launch and stop workers. */
#define DYNBGW_GRANT_ROLE	"dynbgw_user"

int			dynbgw_reserved_worker_processes = 2;

/* Set just before the error that says this worker's authority is gone. */
bool		dynbgw_authority_revoked = false;

/*
 * The check passed, and no catalog change it depends on has come since:
 * authority_changes counts those changes, and a check counts as passed
 * only if none came while it ran.
 */
static bool authority_verified = false;
static uint64 authority_changes = 0;

/* Whether this process connected as a superuser; -1 until first checked. */
static int	connected_as_superuser = -1;

static void
dynbgw_authority_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	authority_verified = false;
	authority_changes++;
}

/*
 * Record who launches and on what the right to launch rests.  Called by
 * the launcher, in the launching database.
 */
void
dynbgw_authority_record(DynbgwDefinition *def, Oid launch_funcoid)
{
	Oid			grant_role = get_role_oid(DYNBGW_GRANT_ROLE, true);

	def->launcher_roleoid = GetUserId();
	def->launch_dboid = MyDatabaseId;
	def->launch_funcoid = launch_funcoid;
	def->via_grant_role = OidIsValid(grant_role) &&
		has_privs_of_role(def->launcher_roleoid, grant_role);
	def->unprivileged = !superuser_arg(def->launcher_roleoid);
}

/*
 * The launch function a worker was launched with, or, when an update has
 * made it anew (grants carried over), its successor: the extension's
 * dynbgw_launch of this database.  InvalidOid if there is none.
 */
static Oid
dynbgw_launch_function_now(Oid launch_funcoid)
{
	Oid			extoid;

	if (SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(launch_funcoid)))
		return launch_funcoid;
	extoid = get_extension_oid("dynbgw", true);
	if (!OidIsValid(extoid))
		return InvalidOid;
	return dynbgw_launch_oid(extoid, dynbgw_extension_schema(extoid), true);
}

static void
dynbgw_authority_gone(int n, int code, const char *detail)
{
	dynbgw_authority_revoked = true;
	ereport(ERROR,
			(errcode(code),
			 errmsg("dynbgw worker %d has lost the authority it was launched with", n),
			 errdetail_internal("%s", detail)));
}

/* Recheck the authority when a role, membership, database or function changes. */
static void
dynbgw_authority_watch(void)
{
	static bool callbacks_registered = false;

	if (callbacks_registered)
		return;
	CacheRegisterSyscacheCallback(AUTHOID, dynbgw_authority_invalidate, 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM,
								  dynbgw_authority_invalidate, 0);
	CacheRegisterSyscacheCallback(DATABASEOID,
								  dynbgw_authority_invalidate, 0);
	CacheRegisterSyscacheCallback(PROCOID, dynbgw_authority_invalidate, 0);
	callbacks_registered = true;
}

/*
 * Whether a launcher that is not a superuser still has the right to launch:
 * from dynbgw_user, or, granted directly, in the database it launched from.
 */
static bool
dynbgw_launcher_may_launch(const DynbgwDefinition *def)
{
	if (def->via_grant_role)
	{
		Oid			grant_role = get_role_oid(DYNBGW_GRANT_ROLE, true);

		return OidIsValid(grant_role) &&
			has_privs_of_role(def->launcher_roleoid, grant_role);
	}
	if (MyDatabaseId == def->launch_dboid)
	{
		Oid			launch_funcoid = dynbgw_launch_function_now(def->launch_funcoid);

		return OidIsValid(launch_funcoid) &&
			object_aclcheck(ProcedureRelationId, launch_funcoid,
							def->launcher_roleoid, ACL_EXECUTE) == ACLCHECK_OK;
	}
	return true;
}

/*
 * Check that worker n's authority still holds; an error, with
 * dynbgw_authority_revoked set, if it does not.  Runs in the worker, in a
 * transaction, connected to the worker's database.
 *
 * - Its role still exists, and is a superuser only if its launcher is one,
 *   and still is one if this process connected as one.
 * - A worker launched as another role: the launcher still exists and may
 *   still SET ROLE to it.
 * - The launcher still has the right to launch: it is a superuser, or, if
 *   the right came from dynbgw_user, still has its privileges; a right
 *   granted directly (EXECUTE on dynbgw_launch) is checked when the worker
 *   is in the database it was launched from, where that function is (or
 *   the one an upgrade made anew in its place, with its grants).
 * - The role still has CONNECT on the database (and, before PostgreSQL 17,
 *   LOGIN), as a new connection would need.
 */
void
dynbgw_authority_check(const DynbgwDefinition *def, int n)
{
	uint64		changes_before = authority_changes;
	HeapTuple	tuple;
	bool		role_is_superuser;
	bool		can_login;
	bool		launcher_is_superuser;

	if (authority_verified)
		return;
	dynbgw_authority_watch();

	tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(def->roleoid));
	if (!HeapTupleIsValid(tuple))
		dynbgw_authority_gone(n, ERRCODE_UNDEFINED_OBJECT,
							  "Its role was dropped.");
	role_is_superuser = ((Form_pg_authid) GETSTRUCT(tuple))->rolsuper;
	can_login = ((Form_pg_authid) GETSTRUCT(tuple))->rolcanlogin;
	ReleaseSysCache(tuple);

	if (def->launcher_roleoid == def->roleoid)
		launcher_is_superuser = role_is_superuser;
	else
	{
		if (!SearchSysCacheExists1(AUTHOID,
								   ObjectIdGetDatum(def->launcher_roleoid)))
			dynbgw_authority_gone(n, ERRCODE_UNDEFINED_OBJECT,
								  "The role that launched it was dropped.");
		launcher_is_superuser = superuser_arg(def->launcher_roleoid);
		if (!launcher_is_superuser &&
			!member_can_set_role(def->launcher_roleoid, def->roleoid))
			dynbgw_authority_gone(n, ERRCODE_INSUFFICIENT_PRIVILEGE,
								  "The role that launched it may no longer SET ROLE to its role.");
	}
	if (role_is_superuser && !launcher_is_superuser)
		dynbgw_authority_gone(n, ERRCODE_INSUFFICIENT_PRIVILEGE,
							  "Its role became a superuser, and the role that launched it is not one.");

	/*
	 * A session keeps the superuser status it connected with for some
	 * things (SET SESSION AUTHORIZATION): a worker that connected as a
	 * superuser ends when its role no longer is one.
	 */
	if (connected_as_superuser < 0)
		connected_as_superuser = role_is_superuser;
	if (connected_as_superuser && !role_is_superuser)
		dynbgw_authority_gone(n, ERRCODE_INSUFFICIENT_PRIVILEGE,
							  "Its role is no longer a superuser, and it connected as one.");

	if (!launcher_is_superuser && !dynbgw_launcher_may_launch(def))
		dynbgw_authority_gone(n, ERRCODE_INSUFFICIENT_PRIVILEGE,
							  "The role that launched it may no longer launch workers.");

	if (object_aclcheck(DatabaseRelationId, MyDatabaseId, def->roleoid,
						ACL_CONNECT) != ACLCHECK_OK)
		dynbgw_authority_gone(n, ERRCODE_INSUFFICIENT_PRIVILEGE,
							  "Its role no longer has CONNECT on its database.");
	if (!can_login && !DYNBGW_NOLOGIN_WORKERS)
		dynbgw_authority_gone(n, ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
							  "Its role may no longer log in.");

	/* Passed; good until a change comes, unless one came meanwhile. */
	authority_verified = authority_changes == changes_before;
}

/*
 * Whether a role may have a pool running as roleoid run its SQL: it is a
 * superuser, or may SET ROLE to it and it is not one.
 */
bool
dynbgw_may_submit(Oid submitter, Oid roleoid)
{
	if (superuser_arg(submitter))
		return true;
	return !superuser_arg(roleoid) && member_can_set_role(submitter, roleoid);
}

/*
 * Before a pool's task runs, in its transaction: the role that submitted
 * it still may, as when it submitted (a role or CONNECT revoked, or the
 * role dropped, while its task waited).  The task fails; the pool's authority is untouched.
 */
void
dynbgw_submitter_check(Oid submitter, Oid roleoid)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(submitter)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that submitted this task was dropped")));
	if (!dynbgw_may_submit(submitter, roleoid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may no longer run SQL as role \"%s\"",
						GetUserNameFromId(submitter, false),
						GetUserNameFromId(roleoid, false)),
				 errdetail("A task runs only while the role that submitted it may SET ROLE to the pool's role.")));
	if (object_aclcheck(DatabaseRelationId, MyDatabaseId, submitter,
						ACL_CONNECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may no longer connect to database \"%s\"",
						GetUserNameFromId(submitter, false),
						get_database_name(MyDatabaseId)),
				 errdetail("A task runs only while the role that submitted it has CONNECT on the pool's database.")));
}

/*
 * What a worker of this role in this database counts against, read from
 * the catalogs before the registry is locked (see
 * dynbgw_count_limits_locked()).
 */
void
dynbgw_limits_prepare(DynbgwLimits *limits, const DynbgwDefinition *def)
{
	HeapTuple	tuple;

	memset(limits, 0, sizeof(*limits));
	limits->roleoid = def->roleoid;
	limits->dboid = def->dboid;
	limits->role_limit = -1;
	limits->db_limit = -1;

	tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(def->roleoid));
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_authid role = (Form_pg_authid) GETSTRUCT(tuple);

		/* As for connections: superusers have no limit. */
		if (!role->rolsuper)
		{
			limits->role_limit = role->rolconnlimit;
			if (OidIsValid(def->dboid))
			{
				HeapTuple	dbtuple;

				dbtuple = SearchSysCache1(DATABASEOID,
										  ObjectIdGetDatum(def->dboid));
				if (HeapTupleIsValid(dbtuple))
				{
					limits->db_limit =
						((Form_pg_database) GETSTRUCT(dbtuple))->datconnlimit;
					ReleaseSysCache(dbtuple);
				}
			}
		}
		ReleaseSysCache(tuple);
	}
	if (limits->role_limit >= 0)
		limits->role_sessions = CountUserBackends(def->roleoid);
	if (limits->db_limit >= 0)
		limits->db_sessions = CountDBConnections(def->dboid);

	limits->unprivileged = def->unprivileged;
	limits->unprivileged_max = max_worker_processes -
		dynbgw_reserved_worker_processes;
}

/*
 * Raise the error of a limit dynbgw_count_limits_locked() found, with the
 * registry no longer locked.
 */
void
dynbgw_limit_error(const DynbgwLimits *limits, DynbgwLimit exceeded)
{
	switch (exceeded)
	{
		case DYNBGW_LIMIT_ROLE:
			ereport(ERROR,
					(errcode(ERRCODE_TOO_MANY_CONNECTIONS),
					 errmsg("too many connections for role \"%s\"",
							GetUserNameFromId(limits->roleoid, false)),
					 errdetail("Its connection limit is %d; dynbgw workers count as connections.",
							   limits->role_limit)));
			break;
		case DYNBGW_LIMIT_DATABASE:
			ereport(ERROR,
					(errcode(ERRCODE_TOO_MANY_CONNECTIONS),
					 errmsg("too many connections for database \"%s\"",
							get_database_name(limits->dboid)),
					 errdetail("Its connection limit is %d; dynbgw workers count as connections.",
							   limits->db_limit)));
			break;
		case DYNBGW_LIMIT_HEADROOM:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("too many dynbgw workers of non-superusers"),
					 errdetail("Workers launched by non-superusers may take %d of the %d background worker processes; \"dynbgw.reserved_worker_processes\" keeps the rest for others.",
							   Max(limits->unprivileged_max, 0),
							   max_worker_processes),
					 errhint("Stop a worker, wait for one with wait_for_slot, or ask a superuser to adjust \"max_worker_processes\" or \"dynbgw.reserved_worker_processes\".")));
			break;
		case DYNBGW_LIMIT_NONE:
			break;
	}
}

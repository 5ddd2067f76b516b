--
-- security: who may launch, stop and see which workers
--
-- After CREATE EXTENSION only dynbgw_pid() and the dynbgw_workers view are
-- usable by everyone; members of dynbgw_user may launch and stop workers.
-- A worker runs as the role that launched it, or as a role its launcher may
-- become, never as a superuser for a non-superuser.  After each error this
-- file prints the SQLSTATE.
--

CREATE ROLE regress_dynbgw_alice LOGIN;
CREATE ROLE regress_dynbgw_bob LOGIN;
CREATE ROLE regress_dynbgw_carol LOGIN;
CREATE ROLE regress_dynbgw_nobody LOGIN;
CREATE ROLE regress_dynbgw_super LOGIN SUPERUSER;
GRANT dynbgw_user TO regress_dynbgw_alice, regress_dynbgw_carol;
GRANT CREATE ON SCHEMA public TO regress_dynbgw_alice;

-- Who may run what, as granted by the extension.
SELECT p.proname,
       has_function_privilege('regress_dynbgw_nobody', p.oid, 'EXECUTE') AS anyone,
       has_function_privilege('dynbgw_user', p.oid, 'EXECUTE') AS dynbgw_user
  FROM pg_proc p
 WHERE p.proname LIKE 'dynbgw%'
 ORDER BY p.proname;
SELECT has_table_privilege('regress_dynbgw_nobody', 'dynbgw_workers', 'SELECT') AS anyone_may_look;

--
-- A role outside dynbgw_user may look but not launch or stop.
--
SET ROLE regress_dynbgw_nobody;
SELECT dynbgw_launch(1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(n => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pid(1) IS NULL AS no_worker, count(*) AS listed FROM dynbgw_workers;
RESET ROLE;

--
-- A member of dynbgw_user launches a worker: it runs as that member, with
-- that member's settings.
--
ALTER ROLE regress_dynbgw_alice SET application_name = 'not used by workers';
ALTER ROLE regress_dynbgw_alice SET search_path = regress_dynbgw_alice_schema, public;
CREATE SCHEMA regress_dynbgw_alice_schema AUTHORIZATION regress_dynbgw_alice;
CREATE TABLE regress_dynbgw_alice_schema.seen (who name, path text);
ALTER TABLE regress_dynbgw_alice_schema.seen OWNER TO regress_dynbgw_alice;

SET ROLE regress_dynbgw_alice;
-- The unqualified table name resolves through the worker role's search_path,
-- not through the launching session's.
SET search_path = public;
SELECT dynbgw_launch(1, 'INSERT INTO seen SELECT current_user, current_setting(''search_path'')',
                     '1 hour') IS NOT NULL AS launched;
RESET search_path;
SELECT wait_until('(SELECT runs FROM dynbgw_workers WHERE n = 1) >= 1');
SELECT who, path FROM regress_dynbgw_alice_schema.seen;
SELECT n, role, command IS NOT NULL AS sees_own_command FROM dynbgw_workers;
SELECT usename, application_name FROM pg_stat_activity WHERE pid = dynbgw_pid(1);

-- Launching as another role needs the right to SET ROLE to it.
SELECT dynbgw_launch(2, role => 'regress_dynbgw_bob');
\echo :LAST_ERROR_SQLSTATE
-- A superuser worker is never available to a non-superuser.
SELECT dynbgw_launch(2, role => 'regress_dynbgw_super');
\echo :LAST_ERROR_SQLSTATE
-- Unknown roles are reported as such.
SELECT dynbgw_launch(2, role => 'regress_dynbgw_no_such_role');
\echo :LAST_ERROR_SQLSTATE
-- Loading a library's code is for superusers only, whatever is granted.
SELECT dynbgw_launch_function(2, 'dynbgw', 'dynbgw_sleep_main');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

GRANT regress_dynbgw_bob TO regress_dynbgw_alice;
SET ROLE regress_dynbgw_alice;
SELECT dynbgw_launch(2, 'SELECT 1', '1 hour', role => 'regress_dynbgw_bob') IS NOT NULL AS launched;
SELECT n, role FROM dynbgw_workers ORDER BY n;
RESET ROLE;

-- Without CONNECT on the database, neither the caller nor the worker's role
-- may put a worker there.
CREATE DATABASE regress_dynbgw_closed;
REVOKE CONNECT ON DATABASE regress_dynbgw_closed FROM PUBLIC;
SET ROLE regress_dynbgw_alice;
SELECT dynbgw_launch(3, database => 'regress_dynbgw_closed');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT CONNECT ON DATABASE regress_dynbgw_closed TO regress_dynbgw_alice;
SET ROLE regress_dynbgw_alice;
SELECT dynbgw_launch(3, database => 'regress_dynbgw_closed', role => 'regress_dynbgw_bob');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS registered FROM dynbgw_workers;

--
-- Seeing and stopping other roles' workers.
--
SET ROLE regress_dynbgw_carol;
-- Of others' workers only number, PID, kind, database and role are shown,
-- as pg_stat_activity shows others' sessions; every other column is NULL.
SELECT n, pid IS NOT NULL AS has_pid, kind, database = current_database() AS db, role,
       num_nulls(state, command, naptime, runs, failures, last_error,
                 launched_at, launched_by_pid, last_started, last_finished,
                 last_duration, next_run, max_runs, restart) AS null_columns
FROM dynbgw_workers ORDER BY n;
-- Carol has neither alice's privileges nor pg_signal_backend.
SELECT dynbgw_stop(dynbgw_pid(1));
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(n => 1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

GRANT pg_read_all_stats, pg_signal_backend TO regress_dynbgw_carol;
SET ROLE regress_dynbgw_carol;
SELECT n, role, state, command, launched_at IS NOT NULL AS launched
FROM dynbgw_workers ORDER BY n;
SELECT dynbgw_stop(dynbgw_pid(2)) AS stopped_bobs_worker;
RESET ROLE;

-- A superuser's worker may be stopped only by a superuser, even with
-- pg_signal_backend.
SELECT dynbgw_launch(4, naptime => '1 hour') IS NOT NULL AS launched_as_superuser;
SET ROLE regress_dynbgw_carol;
SELECT dynbgw_stop(n => 4);
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_dynbgw_alice;
SELECT dynbgw_stop(dynbgw_pid(4));
\echo :LAST_ERROR_SQLSTATE
-- Alice stops her own worker.
SELECT dynbgw_stop(dynbgw_pid(1)) AS stopped_own;
RESET ROLE;
SELECT dynbgw_stop(n => 4) AS stopped_by_superuser;
SELECT count(*) AS registered FROM dynbgw_workers;

--
-- Connection limits: a worker counts as a session of its role in its
-- database, and is refused as a new connection would be (53300).
--
ALTER ROLE regress_dynbgw_alice CONNECTION LIMIT 1;
SET ROLE regress_dynbgw_alice;
SELECT dynbgw_launch(1, naptime => '1 hour') IS NOT NULL AS first_of_one;
SELECT dynbgw_launch(2, naptime => '1 hour');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS registered FROM dynbgw_workers;
-- Superuser roles have no limit, as for connections.
ALTER ROLE regress_dynbgw_super CONNECTION LIMIT 0;
SELECT dynbgw_launch(2, naptime => '1 hour', role => 'regress_dynbgw_super')
       IS NOT NULL AS superuser_role_exempt;
ALTER ROLE regress_dynbgw_alice CONNECTION LIMIT -1;
CREATE DATABASE regress_dynbgw_limited CONNECTION LIMIT 1;
SET ROLE regress_dynbgw_alice;
SELECT dynbgw_launch(3, naptime => '1 hour', database => 'regress_dynbgw_limited')
       IS NOT NULL AS first_in_database;
SELECT dynbgw_launch(4, naptime => '1 hour', database => 'regress_dynbgw_limited');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT n, role, database FROM dynbgw_workers ORDER BY n;
SELECT dynbgw_stop(n => i) AS stopped FROM generate_series(1, 3) AS i ORDER BY i;
DROP DATABASE regress_dynbgw_limited;

DROP DATABASE regress_dynbgw_closed;
DROP SCHEMA regress_dynbgw_alice_schema CASCADE;
REVOKE CREATE ON SCHEMA public FROM regress_dynbgw_alice;
DROP ROLE regress_dynbgw_alice, regress_dynbgw_bob, regress_dynbgw_carol,
    regress_dynbgw_nobody, regress_dynbgw_super;

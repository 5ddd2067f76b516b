/* dynbgw--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dynbgw UPDATE TO '1.1'" to load this file. \quit

-- Functions this script makes anew keep the privileges the DBA gave or
-- took from the old ones: each old function's ACL is kept here until its
-- successor exists, then granted and revoked to match.  The successor's
-- initial privileges stay those of a fresh install, so that pg_dump still
-- writes out the DBA's own grants.  The view dynbgw_workers is replaced in
-- place, and so keeps its privileges and the views users made on it.
CREATE FUNCTION pg_temp.dynbgw_keep_acl(kind text, old_object text)
RETURNS void LANGUAGE sql
AS $$
SELECT pg_catalog.set_config('dynbgw_upgrade.' OPERATOR(pg_catalog.||) kind,
    coalesce((SELECT p.proacl FROM pg_catalog.pg_proc p
              WHERE p.oid OPERATOR(pg_catalog.=) old_object::pg_catalog.regprocedure)::pg_catalog.text,
             ''), true),
       pg_catalog.set_config('dynbgw_upgrade.' OPERATOR(pg_catalog.||) kind OPERATOR(pg_catalog.||) '_owner',
    (SELECT p.proowner FROM pg_catalog.pg_proc p
     WHERE p.oid OPERATOR(pg_catalog.=) old_object::pg_catalog.regprocedure)::pg_catalog.text, true);
$$;

CREATE FUNCTION pg_temp.dynbgw_restore_acl(kind text, object text)
RETURNS void LANGUAGE plpgsql
AS $$
DECLARE
    kept pg_catalog.text := pg_catalog.current_setting('dynbgw_upgrade.' OPERATOR(pg_catalog.||) kind);
    old_owner pg_catalog.oid := pg_catalog.current_setting('dynbgw_upgrade.' OPERATOR(pg_catalog.||) kind OPERATOR(pg_catalog.||) '_owner')::pg_catalog.oid;
    fresh pg_catalog.aclitem[];
    owner pg_catalog.oid;
    target pg_catalog.oid := object::pg_catalog.regprocedure;
    e record;
BEGIN
    SELECT p.proacl, p.proowner INTO fresh, owner FROM pg_catalog.pg_proc p
    WHERE p.oid OPERATOR(pg_catalog.=) target;
    -- No ACL is the default one: EXECUTE for PUBLIC.
    fresh := coalesce(fresh, pg_catalog.acldefault('f'::pg_catalog."char", owner));
    IF kept OPERATOR(pg_catalog.=) '' OR kept::pg_catalog.aclitem[] OPERATOR(pg_catalog.=) fresh THEN
        RETURN;
    END IF;
    -- The owners' own entries are theirs, not grants: an old owner's must
    -- not become one (a superuser who made the extension, since demoted).
    FOR e IN SELECT a.grantee, a.privilege_type FROM pg_catalog.aclexplode(fresh) a
             WHERE a.grantee OPERATOR(pg_catalog.<>) owner
             EXCEPT SELECT a.grantee, a.privilege_type FROM pg_catalog.aclexplode(kept::pg_catalog.aclitem[]) a
    LOOP
        EXECUTE pg_catalog.format('REVOKE %s ON FUNCTION %s FROM %s', e.privilege_type, object,
            CASE WHEN e.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.grantee)) END);
    END LOOP;
    FOR e IN SELECT a.grantee, a.privilege_type, a.is_grantable FROM pg_catalog.aclexplode(kept::pg_catalog.aclitem[]) a
             WHERE a.grantee OPERATOR(pg_catalog.<>) owner
               AND a.grantee OPERATOR(pg_catalog.<>) old_owner
             EXCEPT SELECT a.grantee, a.privilege_type, a.is_grantable FROM pg_catalog.aclexplode(fresh) a
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON FUNCTION %s TO %s%s', e.privilege_type, object,
            CASE WHEN e.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.grantee)) END,
            CASE WHEN e.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    UPDATE pg_catalog.pg_init_privs i SET initprivs = fresh
    WHERE i.objoid OPERATOR(pg_catalog.=) target
      AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
      AND i.objsubid OPERATOR(pg_catalog.=) 0;
END
$$;

-- dynbgw_launch gains run_timeout, cron schedules in a time zone as the
-- other way to say when runs are due (naptime is NULL by default, which
-- means 10 seconds unless there is a schedule), and persist.
SELECT pg_temp.dynbgw_keep_acl('function_launch', 'dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval)');
DROP FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval);

CREATE FUNCTION dynbgw_launch(n integer,
                              command text DEFAULT NULL,
                              naptime interval DEFAULT NULL,
                              database name DEFAULT NULL,
                              role name DEFAULT NULL,
                              runs bigint DEFAULT NULL,
                              restart interval DEFAULT NULL,
                              if_running text DEFAULT 'error',
                              wait_for_slot interval DEFAULT '0',
                              run_timeout interval DEFAULT NULL,
                              schedule text DEFAULT NULL,
                              timezone text DEFAULT NULL,
                              persist boolean DEFAULT false)
RETURNS integer
AS 'MODULE_PATHNAME', 'dynbgw_launch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean) IS
'start worker n, running command every naptime or on a schedule; returns its PID once it is connected';

REVOKE ALL ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean) TO dynbgw_user;
SELECT pg_temp.dynbgw_restore_acl('function_launch', 'dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean)');

-- dynbgw_workers gains last_result, schedule and timezone.  The old
-- function goes under another name while the new one takes its place in
-- the view, which is replaced rather than dropped, so that views made on
-- it stay.
SELECT pg_temp.dynbgw_keep_acl('function_workers', 'dynbgw_workers()');
ALTER FUNCTION dynbgw_workers() RENAME TO dynbgw_workers_1_0;

CREATE FUNCTION dynbgw_workers(
    OUT n integer,
    OUT pid integer,
    OUT kind text,
    OUT state text,
    OUT database name,
    OUT role name,
    OUT command text,
    OUT naptime interval,
    OUT runs bigint,
    OUT failures bigint,
    OUT last_error text,
    OUT launched_at timestamptz,
    OUT launched_by_pid integer,
    OUT last_started timestamptz,
    OUT last_finished timestamptz,
    OUT last_duration interval,
    OUT next_run timestamptz,
    OUT max_runs bigint,
    OUT restart interval,
    OUT last_result text,
    OUT schedule text,
    OUT timezone text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_workers'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE OR REPLACE VIEW dynbgw_workers AS
    SELECT * FROM dynbgw_workers();

DROP FUNCTION dynbgw_workers_1_0();

SELECT pg_temp.dynbgw_restore_acl('function_workers', 'dynbgw_workers()');

-- How a launch ended, for scripts that wait for their workers.
CREATE TYPE dynbgw_outcome AS (
    n integer,
    pid integer,
    outcome text,
    runs bigint,
    failures bigint,
    sqlstate text,
    message text,
    result text,
    ended_at timestamptz);

CREATE FUNCTION dynbgw_wait(n integer, timeout interval DEFAULT NULL)
RETURNS SETOF dynbgw_outcome
AS 'MODULE_PATHNAME', 'dynbgw_wait'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL SAFE ROWS 1;

COMMENT ON FUNCTION dynbgw_wait(integer, interval) IS
'wait until worker n has ended, or for timeout, and say how it ended';

-- The history of the last runs, kept in shared memory.
CREATE FUNCTION dynbgw_runs(
    OUT n integer,
    OUT launch bigint,
    OUT pid integer,
    OUT role name,
    OUT database name,
    OUT started timestamptz,
    OUT finished timestamptz,
    OUT duration interval,
    OUT status text,
    OUT sqlstate text,
    OUT message text,
    OUT result text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_runs'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW dynbgw_runs AS
    SELECT * FROM dynbgw_runs();

COMMENT ON VIEW dynbgw_runs IS
'the last dynbgw.history_size runs of all workers, oldest first';

GRANT SELECT ON dynbgw_runs TO PUBLIC;

-- Check a cron expression: the next times it is due.
CREATE FUNCTION dynbgw_next_runs(schedule text,
                                 timezone text DEFAULT NULL,
                                 "from" timestamptz DEFAULT now(),
                                 count integer DEFAULT 10)
RETURNS SETOF timestamptz
AS 'MODULE_PATHNAME', 'dynbgw_next_runs'
LANGUAGE C CALLED ON NULL INPUT STABLE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_next_runs(text, text, timestamptz, integer) IS
'the next count times at which a cron schedule is due in timezone (default: the session''s) after from';

-- Definitions that survive a restart and a dump.
CREATE TABLE dynbgw_definitions (
    n integer PRIMARY KEY CHECK (n > 0),
    owner name NOT NULL DEFAULT current_user,
    command text,
    naptime interval,
    schedule text,
    timezone text,
    database name NOT NULL,
    role name NOT NULL,
    runs bigint,
    restart interval,
    run_timeout interval,
    saved_at timestamptz NOT NULL DEFAULT now());

COMMENT ON TABLE dynbgw_definitions IS
'dynbgw workers launched with persist => true, which dynbgw_restore() launches again';

SELECT pg_catalog.pg_extension_config_dump('dynbgw_definitions', '');

-- Each role sees and changes its own definitions only; superusers all.
ALTER TABLE dynbgw_definitions ENABLE ROW LEVEL SECURITY;
CREATE POLICY dynbgw_definitions_own ON dynbgw_definitions
    USING (owner = current_user) WITH CHECK (owner = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON dynbgw_definitions TO dynbgw_user;

CREATE FUNCTION dynbgw_restore(OUT n integer, OUT pid integer, OUT error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_restore'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_restore() IS
'launch every saved definition of this database that is not running, each as its owner';

REVOKE ALL ON FUNCTION dynbgw_restore() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_restore() TO dynbgw_user;

-- dynbgw_stop gains forget.
SELECT pg_temp.dynbgw_keep_acl('function_stop', 'dynbgw_stop(integer, interval, integer)');
DROP FUNCTION dynbgw_stop(integer, interval, integer);

CREATE FUNCTION dynbgw_stop(pid integer DEFAULT NULL,
                            timeout interval DEFAULT '10 seconds',
                            n integer DEFAULT NULL,
                            forget boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dynbgw_stop'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_stop(integer, interval, integer, boolean) IS
'stop the dynbgw worker with this PID, or worker number n, and wait until it is gone; forget also deletes its saved definition';

REVOKE ALL ON FUNCTION dynbgw_stop(integer, interval, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_stop(integer, interval, integer, boolean) TO dynbgw_user;
SELECT pg_temp.dynbgw_restore_acl('function_stop', 'dynbgw_stop(integer, interval, integer, boolean)');

DROP FUNCTION pg_temp.dynbgw_keep_acl(text, text);
DROP FUNCTION pg_temp.dynbgw_restore_acl(text, text);

/* dynbgw--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION dynbgw" to load this file. \quit

CREATE FUNCTION dynbgw_launch(n integer,
                              command text DEFAULT NULL,
                              naptime interval DEFAULT '10 seconds',
                              database name DEFAULT NULL,
                              role name DEFAULT NULL,
                              runs bigint DEFAULT NULL,
                              restart interval DEFAULT NULL,
                              if_running text DEFAULT 'error',
                              wait_for_slot interval DEFAULT '0')
RETURNS integer
AS 'MODULE_PATHNAME', 'dynbgw_launch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval) IS
'start worker n, running command every naptime; returns its PID once it is connected';

CREATE FUNCTION dynbgw_launch_function(n integer,
                                       library text,
                                       function text,
                                       arg bigint DEFAULT 0,
                                       database name DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'dynbgw_launch_function'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_launch_function(integer, text, text, bigint, name) IS
'start a library''s background worker entry point as worker n (superuser only); returns its PID';

CREATE FUNCTION dynbgw_pid(n integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'dynbgw_pid'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_pid(integer) IS
'PID of worker n, or NULL if it has no process';

CREATE FUNCTION dynbgw_stop(pid integer DEFAULT NULL,
                            timeout interval DEFAULT '10 seconds',
                            n integer DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dynbgw_stop'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_stop(integer, interval, integer) IS
'stop the dynbgw worker with this PID, or worker number n, and wait until it is gone';

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
    OUT restart interval)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_workers'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW dynbgw_workers AS
    SELECT * FROM dynbgw_workers();

COMMENT ON VIEW dynbgw_workers IS
'every dynbgw worker that exists, seen alike from every session';

-- Looking is safe for everyone: of other roles' workers only the number,
-- PID, kind, database and role are shown.  Launching and stopping are for
-- members of dynbgw_user, a NOLOGIN role made here if it does not exist yet
-- (roles are shared by all databases and stay when the extension is
-- dropped).  Launching a library's entry point is for superusers only,
-- whatever is granted.
REVOKE ALL ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION dynbgw_launch_function(integer, text, text, bigint, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION dynbgw_stop(integer, interval, integer) FROM PUBLIC;
GRANT SELECT ON dynbgw_workers TO PUBLIC;

-- An existing dynbgw_user gets the rights only if granting them to it hands
-- them to nobody unforeseen: it may not log in or have any attribute, no
-- role but a superuser may administer it (and so hand it out), and unless
-- dynbgw made it (in another database: its comment says so) it has no
-- members.
DO $$
DECLARE
    made_by_dynbgw CONSTANT text := 'members may launch and stop dynbgw workers';
    r pg_catalog.pg_roles;
    problem text;
BEGIN
    SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname = 'dynbgw_user';
    IF NOT FOUND THEN
        CREATE ROLE dynbgw_user NOLOGIN;
        EXECUTE pg_catalog.format('COMMENT ON ROLE dynbgw_user IS %L', made_by_dynbgw);
        RETURN;
    END IF;

    IF r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb
       OR r.rolreplication OR r.rolbypassrls THEN
        problem := 'It may log in or has attributes; it must be NOLOGIN with no other attributes.';
    ELSIF EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                  JOIN pg_catalog.pg_roles a ON a.oid = m.member
                  WHERE m.roleid = r.oid AND m.admin_option AND NOT a.rolsuper) THEN
        problem := 'A role that is not a superuser may administer it, and so hand out its rights.';
    ELSIF pg_catalog.shobj_description(r.oid, 'pg_authid') IS DISTINCT FROM made_by_dynbgw
          AND EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE m.roleid = r.oid) THEN
        problem := 'It was not made by dynbgw and has members, who would get its rights.';
    END IF;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'role "dynbgw_user" exists and is not safe to grant dynbgw''s rights to'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = problem,
                  HINT = 'Drop the role or make it safe, then create the extension again.';
    END IF;
END
$$;
GRANT EXECUTE ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval) TO dynbgw_user;
GRANT EXECUTE ON FUNCTION dynbgw_stop(integer, interval, integer) TO dynbgw_user;

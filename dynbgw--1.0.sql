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

-- Looking is safe for everyone: other roles' commands and errors are hidden.
-- Launching and stopping are for members of dynbgw_user, a NOLOGIN role made
-- here if it does not exist yet (roles are shared by all databases and stay
-- when the extension is dropped).  Launching a library's entry point is for
-- superusers only, whatever is granted.
REVOKE ALL ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION dynbgw_launch_function(integer, text, text, bigint, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION dynbgw_stop(integer, interval, integer) FROM PUBLIC;
GRANT SELECT ON dynbgw_workers TO PUBLIC;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dynbgw_user') THEN
        CREATE ROLE dynbgw_user NOLOGIN;
    END IF;
END
$$;
GRANT EXECUTE ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval) TO dynbgw_user;
GRANT EXECUTE ON FUNCTION dynbgw_stop(integer, interval, integer) TO dynbgw_user;

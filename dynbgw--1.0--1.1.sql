/* dynbgw--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dynbgw UPDATE TO '1.1'" to load this file. \quit

-- dynbgw_launch gains run_timeout, cron schedules in a time zone as the
-- other way to say when runs are due (naptime is NULL by default, which
-- means 10 seconds unless there is a schedule), and persist.
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

-- dynbgw_workers gains last_result, schedule and timezone.
DROP VIEW dynbgw_workers;
DROP FUNCTION dynbgw_workers();

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

CREATE VIEW dynbgw_workers AS
    SELECT * FROM dynbgw_workers();

COMMENT ON VIEW dynbgw_workers IS
'every dynbgw worker that exists, seen alike from every session';

GRANT SELECT ON dynbgw_workers TO PUBLIC;

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

--
-- launch: starting dynbgw workers
--
-- dynbgw_launch() starts a SQL worker, dynbgw_launch_function() a library's
-- background worker entry point.  Both return the worker's PID once it is
-- connected and ready, or fail with an error and leave nothing registered.
-- PIDs change from run to run: this file compares them in SQL and never
-- prints them.  After each error it prints the SQLSTATE and the number of
-- registered workers.
--

-- Workers are numbered from 1 to dynbgw.max_workers, a setting that exists
-- once the library is loaded.
LOAD 'dynbgw';
SHOW dynbgw.max_workers;

-- No worker runs yet.
SELECT count(*) AS registered FROM dynbgw_workers;

--
-- SQL workers
--

-- Without a command a worker is idle: it only wakes up every naptime
-- (10 seconds by default) and counts the wake-ups in "runs".
SELECT dynbgw_launch(1) AS pid1 \gset
SELECT :pid1 > 0 AS launched, dynbgw_pid(1) = :pid1 AS same_pid;

-- Right after the launch it is listed as idle, connected to the current
-- database as the current role, and has not woken up yet.
SELECT n, pid = :pid1 AS same_pid, kind, state, database,
       role = current_user AS my_role, command, naptime, runs, failures,
       last_error, launched_at <= now() AS launched_before_now,
       launched_by_pid = pg_backend_pid() AS launched_by_me
  FROM dynbgw_workers;

-- A worker with a command, all arguments named.  It runs the command at once
-- and then every naptime.
SELECT dynbgw_launch(n => 2, command => 'SELECT 1', naptime => '1 hour',
                     database => current_database()) AS pid2 \gset
SELECT wait_until($$ (SELECT runs FROM dynbgw_workers WHERE n = 2) = 1 $$)
       AS first_run_done;

-- A NULL command, given by name, is the same as no command.
SELECT dynbgw_launch(command => NULL, naptime => '2 hours', n => 3) > 0 AS launched;

SELECT n, kind, state, database, role = current_user AS my_role, command,
       naptime, runs, failures, last_error,
       launched_by_pid = pg_backend_pid() AS launched_by_me
  FROM dynbgw_workers ORDER BY n;
SELECT dynbgw_pid(2) = :pid2 AS same_pid;

-- A number that is taken cannot be launched again (42710), whatever the
-- kind.  The DETAIL names the running worker's PID; terse verbosity hides it
-- here, and the DO block below checks it.
\set VERBOSITY terse
SELECT dynbgw_launch(1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(2, 'SELECT 2');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch_function(3, 'dynbgw', 'dynbgw_sleep_main');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
\set VERBOSITY default
DO $$
DECLARE
    detail text;
BEGIN
    PERFORM dynbgw_launch(1, 'SELECT 1');
    RAISE EXCEPTION 'launching worker 1 twice did not fail';
EXCEPTION WHEN duplicate_object THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'DETAIL gives the PID of the running worker: %',
        detail = format('Its PID is %s.', dynbgw_pid(1));
END
$$;

-- The running workers are untouched.
SELECT dynbgw_pid(1) = :pid1 AS worker_1_same, dynbgw_pid(2) = :pid2 AS worker_2_same,
       (SELECT command FROM dynbgw_workers WHERE n = 2) AS command_2;

SELECT n, dynbgw_stop(pid) AS stopped FROM dynbgw_workers ORDER BY n;
SELECT count(*) AS registered FROM dynbgw_workers;

--
-- Refused SQL workers.  No process is started for a bad argument; a worker
-- that cannot connect reports its own error, and its number is free again.
--

-- Worker numbers: below 1 is invalid (22023), above dynbgw.max_workers is a
-- lack of resources (53000), NULL is not allowed (22004).
SELECT dynbgw_launch(0);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(9);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- naptime: NULL means 10 seconds (unless there is a schedule); otherwise
-- between 0 and 366 days (22023).
SELECT dynbgw_launch(1, naptime => NULL) > 0 AS launched;
SELECT naptime FROM dynbgw_workers WHERE n = 1;
SELECT dynbgw_stop(n => 1) AS stopped;
SELECT dynbgw_launch(1, naptime => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(1, naptime => '366 days 00:00:01');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
-- 366 days itself is allowed.
SELECT dynbgw_launch(1, naptime => '366 days') > 0 AS launched;
SELECT naptime = interval '366 days' AS naptime_366_days FROM dynbgw_workers WHERE n = 1;
SELECT dynbgw_stop(dynbgw_pid(1)) AS stopped;

-- The command is parsed at launch: a syntax error (42601) points into the
-- command, an empty command is refused (22023), and so is transaction
-- control (2D000), because each run is a transaction of its own.
SELECT dynbgw_launch(1, 'SELEC 1');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(1, '');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(1, ' ; -- nothing but a comment');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(1, 'COMMIT');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(1, 'SELECT 1; ROLLBACK');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(1, 'SELECT 1; SAVEPOINT s');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- A worker has no client to COPY to or from: its standard output and input
-- are the postmaster's (0A000).  COPY to or from a file is a different
-- matter, for those allowed to.
SELECT dynbgw_launch(1, 'COPY (SELECT 1) TO STDOUT');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(1, 'CREATE TEMP TABLE t (i int); COPY t FROM STDIN');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- The launcher checks with its own lexer settings; the worker checks again
-- at every run with its own (see t/017_hostile_commands.pl).  Here the
-- launcher sees BEGIN, which a worker with standard_conforming_strings on
-- reads as part of a string: refused all the same, the safe side.
SET standard_conforming_strings = on;
SELECT dynbgw_launch(1, $$SELECT 'a\'; BEGIN; SELECT 1; --'$$);
\echo :LAST_ERROR_SQLSTATE
RESET standard_conforming_strings;

-- A command has at most 8191 bytes: 8192 is too long (54000).
SELECT dynbgw_launch(1, 'SELECT ' || repeat('1', 8185));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch(1, 'SELECT ' || repeat('1', 8184), '1 hour') > 0 AS launched;
SELECT octet_length(command) FROM dynbgw_workers WHERE n = 1;
SELECT dynbgw_stop(dynbgw_pid(1)) AS stopped;

-- An unknown database (3D000).
SELECT dynbgw_launch(1, database => 'regression_dynbgw_no_such_db');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- A database that does not accept connections: the worker's own error is
-- the DETAIL, with its SQLSTATE (55000).
SELECT dynbgw_launch(1, database => 'template0');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- A worker runs as the current role.  Whether that role may lack LOGIN
-- depends on the server: from PostgreSQL 17 a background worker may connect
-- as a role without LOGIN; before, the launch fails with the worker's own
-- login error (28000).
CREATE ROLE regress_dynbgw_nologin NOLOGIN;
GRANT EXECUTE ON FUNCTION dynbgw_launch, dynbgw_launch_function
    TO regress_dynbgw_nologin;
SET ROLE regress_dynbgw_nologin;
DO $$
DECLARE
    allowed boolean := current_setting('server_version_num')::int >= 170000;
    launched boolean;
BEGIN
    BEGIN
        launched := dynbgw_launch(1) IS NOT NULL;
    EXCEPTION WHEN invalid_authorization_specification THEN
        launched := false;
    END;
    RAISE NOTICE 'NOLOGIN role handled as documented for this server: %',
        launched = allowed;
END
$$;
RESET ROLE;
SELECT count(dynbgw_stop(pid)) >= 0 AS cleaned_up FROM dynbgw_workers;
SELECT count(*) AS registered FROM dynbgw_workers;
SET ROLE regress_dynbgw_nologin;
-- dynbgw_launch_function is for superusers only, even with EXECUTE (42501).
SELECT dynbgw_launch_function(1, 'dynbgw', 'dynbgw_sleep_main');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
RESET ROLE;

--
-- Function workers
--

-- dynbgw ships the entry point dynbgw_sleep_main, which waits until it is
-- stopped.  Without a database the worker is not connected to one; it has
-- no naptime, and its command is library.function.
SELECT dynbgw_launch_function(4, 'dynbgw', 'dynbgw_sleep_main') AS pid4 \gset
SELECT n, pid = :pid4 AS same_pid, kind, state, database,
       role = current_user AS my_role, command, naptime, runs, failures,
       last_error, launched_by_pid = pg_backend_pid() AS launched_by_me
  FROM dynbgw_workers;

-- With a database, the worker is connected to it before the entry point runs.
SELECT dynbgw_launch_function(n => 5, library => 'dynbgw',
                              function => 'dynbgw_sleep_main',
                              database => current_database()) > 0 AS launched;
SELECT n, kind, state, database, command FROM dynbgw_workers ORDER BY n;

SELECT n, dynbgw_stop(pid) AS stopped FROM dynbgw_workers ORDER BY n;
SELECT count(*) AS registered FROM dynbgw_workers;

-- With arg > 0, dynbgw_sleep_main returns after arg milliseconds; the
-- worker then leaves the registry by itself.  Even a worker that is already
-- done when its launcher looks was launched, and has a PID.
SELECT dynbgw_launch_function(6, 'dynbgw', 'dynbgw_sleep_main', arg => 1) > 0 AS launched;
SELECT wait_until('dynbgw_pid(6) IS NULL') AS ended_by_itself;
SELECT count(*) AS registered FROM dynbgw_workers;

-- A timeout too large to add to the clock means no timeout: the worker
-- waits until stopped (it used to overflow and exit at once).  It is still
-- there after a wait long enough for the old, immediate exit.
SELECT dynbgw_launch_function(6, 'dynbgw', 'dynbgw_sleep_main',
                              arg => 9223372036854775807) AS pid6 \gset
SELECT pg_sleep(0.2);
SELECT dynbgw_pid(6) = :pid6 AS still_waiting;
SELECT dynbgw_stop(:pid6) AS stopped;

--
-- Refused function workers
--

-- A library that does not exist (58P01).
SELECT dynbgw_launch_function(6, 'regress_dynbgw_no_such_library', 'f');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- A function the library does not have (42883).  The message names the
-- library's installed path, which varies; only the SQLSTATE is shown here,
-- and the message without the path.
\set VERBOSITY sqlstate
SELECT dynbgw_launch_function(6, 'dynbgw', 'regress_no_such_function');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT regexp_replace(:'LAST_ERROR_MESSAGE', ' in file ".*"$', ' in file "..."') AS message;
SELECT count(*) AS registered FROM dynbgw_workers;

-- An SQL-callable function is not an entry point (42809).
SELECT dynbgw_launch_function(6, 'dynbgw', 'dynbgw_pid');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- Nor are what every library exports for the server: its initialization
-- function, its magic block and the info records of its SQL functions
-- (42809), nor the function that runs every dynbgw worker.
SELECT dynbgw_launch_function(6, 'dynbgw', '_PG_init');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch_function(6, 'dynbgw', 'Pg_magic_func');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch_function(6, 'dynbgw', 'pg_finfo_dynbgw_pid');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch_function(6, 'dynbgw', 'dynbgw_worker_main');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- dynbgw's internal functions are not exported, so they cannot be loaded
-- by name (42883): calling one as an entry point crashed the server.
\set VERBOSITY sqlstate
SELECT dynbgw_launch_function(6, 'dynbgw', 'dynbgw_set_error', 16);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch_function(6, 'dynbgw', 'dynbgw_registry');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT count(*) AS registered FROM dynbgw_workers;

-- NULL library, function or arg (22004).
SELECT dynbgw_launch_function(6, NULL, 'dynbgw_sleep_main');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch_function(6, 'dynbgw', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch_function(6, 'dynbgw', 'dynbgw_sleep_main', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

-- Worker numbers and databases are checked as for SQL workers.
SELECT dynbgw_launch_function(0, 'dynbgw', 'dynbgw_sleep_main');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch_function(9, 'dynbgw', 'dynbgw_sleep_main');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT dynbgw_launch_function(6, 'dynbgw', 'dynbgw_sleep_main',
                              database => 'regression_dynbgw_no_such_db');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

--
-- Workers at work
--

-- A command that inserts a row: after three runs the table has at least
-- three rows, each from a transaction of its own.
CREATE TABLE launch_runs (id serial PRIMARY KEY,
                          at timestamptz DEFAULT clock_timestamp());
SELECT dynbgw_launch(6, 'INSERT INTO launch_runs DEFAULT VALUES', '10 ms') > 0
       AS launched;
SELECT wait_until($$ (SELECT runs FROM dynbgw_workers WHERE n = 6) >= 3 $$)
       AS ran_3_times;
SELECT count(*) >= 3 AS rows_inserted FROM launch_runs;
SELECT failures, last_error FROM dynbgw_workers WHERE n = 6;
SELECT dynbgw_stop(dynbgw_pid(6)) AS stopped;
SELECT count(DISTINCT xmin::text) = count(*) AS one_transaction_per_row
  FROM launch_runs;

-- A command may CALL a procedure that commits.
CREATE PROCEDURE launch_commit() LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO launch_runs DEFAULT VALUES;
    COMMIT;
    INSERT INTO launch_runs DEFAULT VALUES;
END
$$;
TRUNCATE launch_runs;
SELECT dynbgw_launch(7, 'CALL launch_commit()', '10 ms') > 0 AS launched;
SELECT wait_until($$ (SELECT runs FROM dynbgw_workers WHERE n = 7) >= 2 $$)
       AS ran_twice;
SELECT failures, last_error FROM dynbgw_workers WHERE n = 7;
SELECT dynbgw_stop(dynbgw_pid(7)) AS stopped;
SELECT count(*) >= 4 AS rows_inserted,
       count(DISTINCT xmin::text) = count(*) AS one_transaction_per_row
  FROM launch_runs;

-- A failing command is counted in "failures", its message kept in
-- "last_error"; the worker goes on.
SELECT dynbgw_launch(8, 'SELECT 1/0', '10 ms') AS pid8 \gset
SELECT wait_until($$ (SELECT failures FROM dynbgw_workers WHERE n = 8) >= 2 $$)
       AS failed_twice;
SELECT pid = :pid8 AS same_worker, runs >= failures AS failures_are_runs,
       last_error
  FROM dynbgw_workers WHERE n = 8;
SELECT dynbgw_stop(:pid8) AS stopped;

-- Clean up.  No worker is left; if one were, it would be counted here and
-- stopped, so that the next test starts clean.
SELECT count(dynbgw_stop(pid)) AS left_over FROM dynbgw_workers;
DROP PROCEDURE launch_commit();
DROP TABLE launch_runs;
DROP OWNED BY regress_dynbgw_nologin;
DROP ROLE regress_dynbgw_nologin;

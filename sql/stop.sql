--
-- stop: stopping dynbgw workers
--
-- dynbgw_stop(pid) asks the worker with that PID to stop and waits until its
-- process is gone.  It works from any session, and only ever signals dynbgw
-- workers.  PIDs change from run to run: this file compares them in SQL and
-- never prints them.
--

-- No worker runs yet.
SELECT count(*) AS registered FROM dynbgw_workers;

--
-- Stopping a worker
--

-- dynbgw_stop returns true once the process is gone: right after it, the
-- process is no longer in pg_stat_activity and the worker no longer listed.
SELECT dynbgw_launch(1) AS pid1 \gset
SELECT count(*) AS in_pg_stat_activity FROM pg_stat_activity WHERE pid = :pid1;
SELECT dynbgw_stop(:pid1) AS stopped;
SELECT count(*) AS in_pg_stat_activity FROM pg_stat_activity WHERE pid = :pid1;
SELECT count(*) AS registered, dynbgw_pid(1) IS NULL AS no_pid
  FROM dynbgw_workers;

-- Function workers are stopped the same way.  This one is connected to the
-- database, so it is in pg_stat_activity too.
SELECT dynbgw_launch_function(2, 'dynbgw', 'dynbgw_sleep_main',
                              database => current_database()) AS pid2 \gset
SELECT count(*) AS in_pg_stat_activity FROM pg_stat_activity WHERE pid = :pid2;
SELECT dynbgw_stop(:pid2, timeout => '30 seconds') AS stopped;
SELECT count(*) AS in_pg_stat_activity FROM pg_stat_activity WHERE pid = :pid2;
SELECT count(*) AS registered FROM dynbgw_workers;

-- A worker in the middle of a long run is stopped at once: the run is
-- cancelled.  The worker below sleeps for an hour in its first run.
SELECT dynbgw_launch(3, 'SELECT pg_sleep(3600)') AS pid3 \gset
SELECT wait_until(format(
    $$ EXISTS (SELECT FROM pg_stat_activity
               WHERE pid = %s AND wait_event = 'PgSleep') $$, :pid3))
       AS sleeping;
SELECT state FROM dynbgw_workers WHERE n = 3;
SELECT clock_timestamp() AS before_stop \gset
SELECT dynbgw_stop(:pid3) AS stopped;
SELECT clock_timestamp() - :'before_stop'::timestamptz < interval '5 seconds' AS stopped_quickly;
SELECT count(*) AS registered FROM dynbgw_workers;

--
-- What is not stopped
--

-- A NULL PID: false, without a notice.
SELECT dynbgw_stop(NULL) AS stopped;

-- A PID no dynbgw worker has: false, with a notice.  The first PID is above
-- any Linux pid_max.  The second one belonged to the worker stopped above;
-- its notice names that PID, so it is not shown.
SELECT dynbgw_stop(2147483647) AS stopped;
SET client_min_messages = warning;
SELECT dynbgw_stop(:pid1) AS stopped;
RESET client_min_messages;

-- A worker number that does not run has no PID, so stopping it is harmless.
SELECT dynbgw_pid(3) IS NULL AS not_running, dynbgw_stop(dynbgw_pid(3)) AS stopped;

-- A live server process that is not a dynbgw worker is never signalled: the
-- current backend, the postmaster, an auxiliary process (the checkpointer)
-- and a background worker of another kind are refused with 22023.  The
-- message names the PID, so it is printed with the PID replaced by N.
\set VERBOSITY sqlstate
SELECT dynbgw_stop(pg_backend_pid());
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT regexp_replace(:'LAST_ERROR_MESSAGE', '\d+', 'N') AS message;

SELECT split_part(pg_read_file('postmaster.pid'), E'\n', 1)::int AS postmaster_pid \gset
\set VERBOSITY sqlstate
SELECT dynbgw_stop(:postmaster_pid);
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT regexp_replace(:'LAST_ERROR_MESSAGE', '\d+', 'N') AS message;

SELECT pid AS checkpointer_pid FROM pg_stat_activity
 WHERE backend_type = 'checkpointer' \gset
\set VERBOSITY sqlstate
SELECT dynbgw_stop(:checkpointer_pid);
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT regexp_replace(:'LAST_ERROR_MESSAGE', '\d+', 'N') AS message;

SELECT pid AS launcher_pid FROM pg_stat_activity
 WHERE backend_type = 'logical replication launcher' \gset
\set VERBOSITY sqlstate
SELECT dynbgw_stop(:launcher_pid);
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT regexp_replace(:'LAST_ERROR_MESSAGE', '\d+', 'N') AS message;

-- They all still run.
SELECT count(*) AS still_running FROM pg_stat_activity
 WHERE pid IN (pg_backend_pid(), :checkpointer_pid, :launcher_pid);

-- A PID of 0 or below is invalid (22023).
SELECT dynbgw_stop(0);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(-1);
\echo :LAST_ERROR_SQLSTATE

-- The timeout must not be NULL (22004) and lies between 0 and 366 days
-- (22023).
SELECT dynbgw_stop(2147483647, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(2147483647, '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(2147483647, '367 days');
\echo :LAST_ERROR_SQLSTATE

--
-- Stopping from another session
--

-- Launch a worker and note its PID in a table; \c starts a new session,
-- which stops it.
CREATE TABLE stop_pids (n integer PRIMARY KEY, pid integer NOT NULL);
INSERT INTO stop_pids SELECT 4, dynbgw_launch(4, 'SELECT 1', '1 hour');
SELECT pg_backend_pid() AS first_session \gset
\c
SELECT pg_backend_pid() <> :first_session AS new_session;
SELECT dynbgw_stop(pid) AS stopped FROM stop_pids WHERE n = 4;
SELECT count(*) AS registered FROM dynbgw_workers;

-- A worker outlives the session that launched it.  Launch one, keep its PID
-- in a psql variable, reconnect, and wait until the launching session has
-- exited: the worker still runs, listed in dynbgw_workers and in
-- pg_stat_activity as a "dynbgw" background worker named after its number.
SELECT dynbgw_launch(5) AS pid5 \gset
SELECT pg_backend_pid() AS launching_session \gset
\c
SELECT wait_until(format(
    'NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)', :launching_session))
       AS launching_session_gone;
SELECT n, pid = :pid5 AS same_pid, state,
       launched_by_pid = :launching_session AS launched_by_old_session
  FROM dynbgw_workers;
SELECT backend_type, application_name, datname = current_database() AS same_db
  FROM pg_stat_activity WHERE pid = :pid5;
SELECT dynbgw_stop(:pid5) AS stopped;
SELECT count(*) AS in_pg_stat_activity FROM pg_stat_activity WHERE pid = :pid5;

-- Clean up.  No worker is left; if one were, it would be counted here and
-- stopped, so that the next test starts clean.
SELECT count(dynbgw_stop(pid)) AS left_over FROM dynbgw_workers;
DROP TABLE stop_pids;

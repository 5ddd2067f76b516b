--
-- workers: the dynbgw_workers view
--
-- The view lists every dynbgw worker of the server, whichever database or
-- session asks.  PIDs and timestamps change from run to run: this file
-- compares them in SQL and never prints them.
--

-- No worker runs yet.
SELECT count(*) AS registered FROM dynbgw_workers;

-- A second database, without the extension for now.  \set keeps the name
-- of this one to come back to.
\set first_db :DBNAME
CREATE DATABASE regression_dynbgw_other;

-- Three workers of different kinds, launched from this session: an idle SQL
-- worker, a SQL worker in the second database whose first run is done, and
-- a function worker.  With naptimes of an hour, nothing changes while the
-- view is looked at.
SELECT pg_backend_pid() AS launcher \gset
SELECT dynbgw_launch(1, naptime => '1 hour') > 0 AS launched;
SELECT dynbgw_launch(2, 'SELECT 1', '1 hour',
                     database => 'regression_dynbgw_other') > 0 AS launched;
SELECT wait_until($$ (SELECT runs FROM dynbgw_workers WHERE n = 2) = 1 $$)
       AS first_run_done;
SELECT dynbgw_launch_function(3, 'dynbgw', 'dynbgw_sleep_main') > 0 AS launched;

-- launched_by_pid is the PID of the launching backend; pid is the worker's
-- own, as in pg_stat_activity.
SELECT n, kind, state, database, role = current_user AS my_role, command,
       naptime, runs, failures, last_error,
       launched_by_pid = pg_backend_pid() AS launched_by_me,
       pid = dynbgw_pid(n) AS pid_ok
  FROM dynbgw_workers ORDER BY n;
-- pg_stat_activity lists the workers connected to a database; the function
-- worker, connected to none, is not there.
SELECT w.n, a.backend_type, a.application_name, a.datname
  FROM dynbgw_workers w JOIN pg_stat_activity a USING (pid) ORDER BY w.n;

-- Everything the view shows, as one value to compare with what another
-- database sees.
SELECT string_agg(w::text, E'\n' ORDER BY n) AS seen_here
  FROM dynbgw_workers w \gset

-- In a database without the extension there is no view (42P01).
\c regression_dynbgw_other
SELECT count(*) FROM dynbgw_workers;
\echo :LAST_ERROR_SQLSTATE

-- With the extension installed there too, the view shows the same workers,
-- launched by another session.
CREATE EXTENSION dynbgw;
SELECT string_agg(w::text, E'\n' ORDER BY n) = :'seen_here' AS same_view
  FROM dynbgw_workers w;
SELECT n, database, launched_by_pid = :launcher AS launched_by_first_session,
       launched_by_pid <> pg_backend_pid() AS not_launched_here
  FROM dynbgw_workers ORDER BY n;

-- Worker 2 runs in this database.
SELECT application_name FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'dynbgw';

-- A worker launched here is seen from the first database too.
SELECT dynbgw_launch(4, naptime => '1 hour') > 0 AS launched;
SELECT pg_backend_pid() AS other_launcher \gset
\c :first_db
SELECT n, database, launched_by_pid = :other_launcher AS launched_by_other_db
  FROM dynbgw_workers WHERE n = 4;

-- An idle worker counts its wake-ups: with a naptime of 10 ms, "runs" keeps
-- growing while nothing fails.
SELECT dynbgw_launch(5, naptime => '10 ms') > 0 AS launched;
SELECT wait_until($$ (SELECT runs FROM dynbgw_workers WHERE n = 5) >= 5 $$)
       AS woke_up_5_times;
SELECT runs AS runs_before FROM dynbgw_workers WHERE n = 5 \gset
SELECT wait_until(format(
    '(SELECT runs FROM dynbgw_workers WHERE n = 5) > %s', :runs_before))
       AS still_counting;
SELECT command, naptime, failures, last_error FROM dynbgw_workers WHERE n = 5;

-- After stopping every worker, the view is empty, and no dynbgw process is
-- left.
SELECT n, dynbgw_stop(pid) AS stopped FROM dynbgw_workers ORDER BY n;
SELECT count(*) AS registered FROM dynbgw_workers;
SELECT count(*) AS dynbgw_processes FROM pg_stat_activity
 WHERE backend_type = 'dynbgw';

-- Clean up.
DROP DATABASE regression_dynbgw_other;

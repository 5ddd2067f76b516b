--
-- jobs: what a SQL worker does with its command
--
-- Each run is a transaction of its own; failures are counted and survived;
-- a worker with a run limit exits by itself; if_running decides what a
-- second launch of the same number does.  After each error this file prints
-- the SQLSTATE.
--

CREATE TABLE log (run int, note text);

-- A procedure that commits in the middle: what it wrote before the COMMIT
-- stays even though the rest of the run fails.
CREATE PROCEDURE half_done() LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log VALUES (1, 'committed');
    COMMIT;
    INSERT INTO log VALUES (1, 'rolled back');
    PERFORM 1 / 0;
END
$$;

-- Runs once, then exits by itself: the row goes away.
SELECT dynbgw_launch(1, 'CALL half_done()', '1 hour', runs => 1) IS NOT NULL AS launched;
SELECT wait_until('NOT EXISTS (SELECT FROM dynbgw_workers WHERE n = 1)');
SELECT * FROM log ORDER BY note;

-- Several statements are one transaction: a failure undoes them all, is
-- counted, and the worker carries on with the next run.
TRUNCATE log;
SELECT dynbgw_launch(2, 'INSERT INTO log VALUES (2, ''before''); SELECT 1 / 0',
                     '10 ms') IS NOT NULL AS launched;
SELECT wait_until('(SELECT failures FROM dynbgw_workers WHERE n = 2) >= 3');
SELECT n, state IN ('idle', 'running') AS alive, runs >= failures AS counted,
       last_error, last_started IS NOT NULL AS started,
       last_finished IS NOT NULL AS finished, max_runs, restart
  FROM dynbgw_workers WHERE n = 2;
SELECT count(*) AS rows_kept FROM log;

-- Once the table it needs exists, the same worker's runs succeed.
CREATE TABLE later (x int);
SELECT dynbgw_launch(3, 'INSERT INTO later VALUES (1)', '10 ms') IS NOT NULL AS launched;
SELECT wait_until('(SELECT count(*) FROM later) >= 3');
SELECT failures FROM dynbgw_workers WHERE n = 3;

--
-- if_running
--
SELECT dynbgw_launch(4, naptime => '1 hour') AS pid4 \gset
-- 'error' (the default) refuses; the detail names the running PID.
\set VERBOSITY terse
SELECT dynbgw_launch(4);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
-- 'skip' returns the running worker's PID and changes nothing.
SELECT dynbgw_launch(4, 'SELECT 2', if_running => 'skip') = :pid4 AS same_worker;
SELECT command IS NULL AS unchanged, naptime FROM dynbgw_workers WHERE n = 4;
-- 'replace' stops it and launches the new definition.
SELECT dynbgw_launch(4, naptime => '2 hours', if_running => 'replace') <> :pid4 AS new_worker;
SELECT naptime FROM dynbgw_workers WHERE n = 4;
SELECT count(*) AS old_process_left FROM pg_stat_activity WHERE pid = :pid4;
-- Anything else is an error that lists the valid values.
SELECT dynbgw_launch(4, if_running => 'overwrite');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(4, if_running => NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- Arguments out of range
--
SELECT dynbgw_launch(5, runs => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(5, restart => '-1 second');
\echo :LAST_ERROR_SQLSTATE
-- A restart delay under a second would restart a failing worker in a
-- tight loop (22023).
SELECT dynbgw_launch(5, restart => '0');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(5, restart => '999 ms');
\echo :LAST_ERROR_SQLSTATE
-- A worker without a command only counts its wake-ups: at naptime 0 it
-- would spin (22023).  With a command, naptime 0 runs it back to back.
SELECT dynbgw_launch(5, naptime => '0');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(5, wait_for_slot => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(5, wait_for_slot => '400 days');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(n => 5, timeout => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(pid => 1, n => 5);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(n => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers WHERE n = 5;

-- A restart delay is kept in whole seconds, rounded up.
SELECT dynbgw_launch(5, naptime => '1 hour', restart => '1.5 seconds') IS NOT NULL AS launched;
SELECT restart FROM dynbgw_workers WHERE n = 5;

-- Stopping by number works whatever the state, and tells when nothing runs.
SELECT dynbgw_stop(n => i) AS stopped FROM generate_series(1, 5) AS i ORDER BY i;
SELECT count(*) AS registered FROM dynbgw_workers;

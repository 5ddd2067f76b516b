--
-- Outcomes: dynbgw_wait() says how a launch ended, any time later and from
-- any session; dynbgw_runs keeps the last runs of all workers.
--
SELECT clock_timestamp() AS t0 \gset

-- A run-once job: wait for it, then read how it ended.  result is what a
-- client would have been told of the last statement.
CREATE TABLE outcome_rows (i int);
SELECT dynbgw_launch(1, 'INSERT INTO outcome_rows SELECT generate_series(1, 5)',
                     runs => 1) > 0 AS launched;
SELECT n, pid IS NOT NULL AS has_pid, outcome, runs, failures, sqlstate,
       message, result, ended_at IS NOT NULL AS ended
FROM dynbgw_wait(1);
-- The outcome stays until the number is launched again.
SELECT outcome, result FROM dynbgw_wait(1, '0');

-- A job whose last run failed.
SELECT dynbgw_launch(2, 'SELECT 1/0', runs => 1) > 0 AS launched;
SELECT outcome, runs, failures, sqlstate, message, result FROM dynbgw_wait(2);

-- A worker still running when the timeout passes; then stopped.
SELECT dynbgw_launch(3, 'SELECT 1', naptime => '1 hour') > 0 AS launched;
SELECT outcome, ended_at FROM dynbgw_wait(3, '10 ms');
SELECT dynbgw_stop(n => 3) AS stopped;
SELECT outcome, ended_at IS NOT NULL AS ended FROM dynbgw_wait(3, '0');

-- The view shows the last run's result too.
SELECT dynbgw_launch(4, 'DELETE FROM outcome_rows WHERE i > 3', naptime => '1 hour')
       > 0 AS launched;
SELECT wait_until('(SELECT runs FROM dynbgw_workers WHERE n = 4) >= 1');
SELECT last_result FROM dynbgw_workers WHERE n = 4;
SELECT dynbgw_stop(n => 4) AS stopped;

-- run_timeout cancels a run that takes longer (57014); the worker goes on
-- with its schedule, here to the end of its one run.
SELECT dynbgw_launch(5, 'SELECT pg_sleep(10)', runs => 1, run_timeout => '100 ms')
       > 0 AS launched;
SELECT outcome, failures, sqlstate, message FROM dynbgw_wait(5);

-- The history, oldest first, of the runs above.
SELECT n, status, sqlstate, result, duration >= '0' AS timed
FROM dynbgw_runs WHERE started >= :'t0' ORDER BY started;

-- Others' outcomes and runs show no more than dynbgw_workers does.
CREATE ROLE regress_dynbgw_stranger;
SET ROLE regress_dynbgw_stranger;
SELECT n, pid IS NOT NULL AS has_pid, outcome, runs, message FROM dynbgw_wait(2, '0');
SELECT n, pid IS NOT NULL AS has_pid, role IS NOT NULL AS has_role, status, message
FROM dynbgw_runs WHERE n = 2 ORDER BY launch DESC LIMIT 1;
RESET ROLE;
DROP ROLE regress_dynbgw_stranger;

-- Bad arguments.
SELECT dynbgw_wait(0);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_wait(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_wait(1, '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(6, 'SELECT 1', run_timeout => '0');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(6, 'SELECT 1', run_timeout => '25 days');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;
DROP TABLE outcome_rows;

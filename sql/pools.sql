--
-- pools: workers that run submitted tasks, in priority order
--
-- dynbgw_pool_create() starts workers that take the tasks dynbgw_submit()
-- queues, the highest priority first, in submission order among equals;
-- dynbgw_wait_task() waits for one, dynbgw_cancel_task() cancels one, the
-- view dynbgw_tasks shows them.  Tasks run as the pool's role, submitted
-- only by those who may SET ROLE to it, each starting clean.  Workers that
-- die, crash-restarts, drops while tasks run and floods are
-- t/052_pools.pl's.
--

CREATE ROLE regress_dynbgw_pool_owner LOGIN;
CREATE ROLE regress_dynbgw_pool_member LOGIN IN ROLE regress_dynbgw_pool_owner;
CREATE ROLE regress_dynbgw_pool_other LOGIN;
CREATE ROLE regress_dynbgw_pool_alt ROLE regress_dynbgw_pool_owner;
GRANT dynbgw_user TO regress_dynbgw_pool_owner, regress_dynbgw_pool_other;
GRANT CREATE ON SCHEMA public TO regress_dynbgw_pool_owner;

-- Errors that name a task, with its id (which differs at each run) out.
CREATE FUNCTION pool_error(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'task \d+', 'task N');
END
$$;

-- Bad input: each a clear error, and nothing made.
SELECT dynbgw_pool_create('regress_p', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pool_create('regress_p', 1, queue_size => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pool_create('', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pool_create(repeat('p', 64), 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pool_create(NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pool_create(E'a\tb', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pool_create('regress_p', 1, queue_size => 20000);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS pools FROM dynbgw_pools;

-- A pool that cannot get all its workers is not made, and leaves none: a
-- number that holds a result is not taken (53000).
SELECT dynbgw_launch(6, 'SELECT 1', runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(6, '30 s');
SELECT dynbgw_pool_create('regress_p', 8);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS pools FROM dynbgw_pools;
SELECT wait_until('(SELECT count(*) = 0 FROM dynbgw_workers)');
SELECT dynbgw_drop_result(6);

-- A pool's role is one its maker may SET ROLE to.
SET ROLE regress_dynbgw_pool_other;
SELECT dynbgw_pool_create('regress_p', 1, role => 'regress_dynbgw_pool_owner');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pool_create('regress_p', 1, role => 'postgres');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- One worker, three tasks may wait.  Its workers take the highest numbers.
SET ROLE regress_dynbgw_pool_owner;
SELECT dynbgw_pool_create('regress_p', 1, queue_size => 3);
SELECT dynbgw_pool_create('regress_p', 1, queue_size => 3);
SELECT dynbgw_pool_create('regress_p', 2, queue_size => 3);
\echo :LAST_ERROR_SQLSTATE
SELECT name, state, size, database = current_database() AS here, role, owner,
       queue_size, queued
  FROM dynbgw_pools;
SELECT n, state, pool, command, naptime FROM dynbgw_workers;
CREATE TABLE regress_pool_log (task text, at timestamptz DEFAULT clock_timestamp());
RESET ROLE;

-- Priorities: the worker waits on a lock this session holds while tasks
-- queue up; then the highest priority runs first, equals in order.
SELECT pg_advisory_lock(4242);
SET ROLE regress_dynbgw_pool_owner;
SELECT dynbgw_submit('regress_p', 'SELECT pg_advisory_xact_lock(4242)') AS blocker \gset
SELECT wait_until($$(SELECT state = 'running' FROM dynbgw_tasks WHERE id = $$ || :blocker || ')');
SELECT dynbgw_submit('regress_p', $$INSERT INTO regress_pool_log (task) VALUES ('a')$$) AS a \gset
SELECT dynbgw_submit('regress_p', $$INSERT INTO regress_pool_log (task) VALUES ('b')$$, priority => 5) AS b \gset
SELECT dynbgw_submit('regress_p', $$INSERT INTO regress_pool_log (task) VALUES ('c')$$) AS c \gset
SELECT id = :a AS first, state, priority FROM dynbgw_tasks WHERE state = 'queued' ORDER BY id;
SELECT queued FROM dynbgw_pools;

-- The queue is full (53400), unless the submission may wait for room.
SELECT dynbgw_submit('regress_p', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_submit('regress_p', 'SELECT 1', wait_for_slot => '10 ms');
\echo :LAST_ERROR_SQLSTATE

-- A waiting task cancelled ends at once; cancelling again says it ended.
SELECT dynbgw_cancel_task(:c);
SELECT state, outcome, started IS NULL AS never_started FROM dynbgw_wait_task(:c, '0');
SET client_min_messages = warning;
SELECT dynbgw_cancel_task(:c);
RESET client_min_messages;
RESET ROLE;
SELECT pg_advisory_unlock(4242);
SELECT outcome, result FROM dynbgw_wait_task(:a, '30 s');
SELECT string_agg(task, ' ' ORDER BY at) AS ran_in_order FROM regress_pool_log;
SELECT outcome, result, worker = (SELECT n FROM dynbgw_workers WHERE pool = 'regress_p') AS on_its_worker
  FROM dynbgw_wait_task(:b, '0');

-- A running task cancelled is cancelled as a query is.
SET ROLE regress_dynbgw_pool_owner;
SELECT dynbgw_submit('regress_p', 'SELECT pg_sleep(60)') AS sleeper \gset
SELECT wait_until($$(SELECT state = 'running' FROM dynbgw_tasks WHERE id = $$ || :sleeper || ')');
SELECT dynbgw_cancel_task(:sleeper);
SELECT state, outcome, sqlstate FROM dynbgw_wait_task(:sleeper, '30 s');

-- run_timeout bounds a task as it bounds a run.
SELECT outcome, sqlstate, message
  FROM dynbgw_wait_task(dynbgw_submit('regress_p', 'SELECT pg_sleep(60)', run_timeout => '50 ms'), '30 s');

-- Waiting may not run in a parallel worker, which does not know the
-- transaction's own tasks, queued only at its commit.
SELECT proname, proparallel FROM pg_proc
 WHERE proname IN ('dynbgw_submit', 'dynbgw_wait_task', 'dynbgw_cancel_task')
 ORDER BY 1;

-- Unknown tasks and bad ids.
SELECT * FROM dynbgw_wait_task(1, '0');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dynbgw_wait_task(0, '0');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_cancel_task(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_submit('regress_missing', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_submit('regress_p', 'SELEC 1');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_submit('regress_p', NULL);
\echo :LAST_ERROR_SQLSTATE

-- In a transaction block a task is queued at commit: rolled back, it never
-- was; a subtransaction rolled back takes its tasks with it.
BEGIN;
SELECT dynbgw_submit('regress_p', $$INSERT INTO regress_pool_log (task) VALUES ('rolled back')$$) AS gone \gset
SELECT pool_error('SELECT dynbgw_wait_task(' || :gone || ')');
ROLLBACK;
SELECT pool_error('SELECT dynbgw_wait_task(' || :gone || ', ''0'')');
BEGIN;
SELECT dynbgw_submit('regress_p', $$INSERT INTO regress_pool_log (task) VALUES ('committed')$$) AS kept \gset
SAVEPOINT s;
SELECT dynbgw_submit('regress_p', $$INSERT INTO regress_pool_log (task) VALUES ('savepoint')$$) AS undone \gset
ROLLBACK TO s;
SELECT count(*) AS visible_before_commit FROM dynbgw_tasks WHERE id IN (:kept, :undone);
COMMIT;
SELECT outcome FROM dynbgw_wait_task(:kept, '30 s');
SELECT pool_error('SELECT dynbgw_wait_task(' || :undone || ', ''0'')');
SELECT task FROM regress_pool_log WHERE task NOT IN ('a', 'b') ORDER BY at;

-- A transaction that submitted a task cannot be prepared, as one that
-- woke a worker cannot; the task goes with it.
BEGIN;
SELECT dynbgw_submit('regress_p', $$INSERT INTO regress_pool_log (task) VALUES ('prepared')$$) AS prepared \gset
PREPARE TRANSACTION 'regress_dynbgw_task';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS prepared FROM pg_prepared_xacts;
SELECT pool_error('SELECT dynbgw_wait_task(' || :prepared || ', ''0'')');

-- Each task starts clean: what one sets, the next does not see.
SELECT outcome, message FROM dynbgw_wait_task(dynbgw_submit('regress_p', $$
    SET work_mem = '7MB'; SELECT set_config('search_path', 'pg_temp', false);
    CREATE TEMP TABLE regress_left (x integer); PREPARE regress_left AS SELECT 1;
    SET ROLE regress_dynbgw_pool_alt$$), '30 s');
SELECT dynbgw_submit('regress_p', $$
    SELECT current_user AS who, current_setting('work_mem') AS work_mem,
           current_setting('search_path') AS search_path,
           (SELECT count(*) FROM pg_prepared_statements) AS prepared,
           to_regclass('pg_temp.regress_left') IS NULL AS no_temp$$,
    keep_result => true) AS clean \gset
SELECT outcome FROM dynbgw_wait_task(:clean, '30 s');
SELECT * FROM dynbgw_task_result(:clean)
  AS (who name, work_mem text, search_path text, prepared bigint, no_temp boolean);
SELECT * FROM dynbgw_task_result_json(:clean);
SELECT n IS NULL AS no_number, rows FROM dynbgw_results WHERE task = :clean;
SELECT dynbgw_drop_task_result(:clean) AS dropped;
SELECT count(*) AS kept FROM dynbgw_results;
SELECT dynbgw_submit('regress_p', 'SELECT 1 AS one', keep_result => true) AS clean \gset
SELECT outcome FROM dynbgw_wait_task(:clean, '30 s');
RESET ROLE;

-- Who submits, sees, cancels and reads: a member of the pool's role may;
-- another role may not (42501), and sees tasks without their details.
SET ROLE regress_dynbgw_pool_member;
SELECT outcome FROM dynbgw_wait_task(dynbgw_submit('regress_p', 'SELECT 1'), '30 s');
SELECT count(*) > 0 AS reads FROM dynbgw_task_result_json(:clean);
SET ROLE regress_dynbgw_pool_other;
SELECT dynbgw_submit('regress_p', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT pool_error('SELECT dynbgw_task_result_json(' || :clean || ')');
SELECT id = :clean AS its_task, pool, state, role, submitted_by, outcome, result
  FROM dynbgw_tasks WHERE id = :clean;
SELECT queued FROM dynbgw_pools;
SELECT pool_error('SELECT dynbgw_cancel_task(' || :clean || ')');
SELECT dynbgw_pool_drop('regress_p');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Saved, a pool is made again by dynbgw_restore(), as the role that saved
-- it; others do not see the row.  A restore again finds it there.
SET ROLE regress_dynbgw_pool_owner;
SELECT dynbgw_pool_create('regress_saved', 1, queue_size => 5, persist => true);
SELECT name, owner, size, database IS NULL AS this_database, role, queue_size
  FROM dynbgw_pool_definitions;
SELECT * FROM dynbgw_dump_definitions();
SELECT dynbgw_pool_drop('regress_saved');
SELECT n = 7 AS its_number, pid IS NOT NULL AS running, error, pool FROM dynbgw_restore();
SELECT n = 7 AS its_number, pid IS NOT NULL AS running, error, pool FROM dynbgw_restore();
SELECT name, size, queue_size FROM dynbgw_pools WHERE name = 'regress_saved';
SET ROLE regress_dynbgw_pool_other;
SELECT count(*) AS others_see FROM dynbgw_pool_definitions;
SELECT * FROM dynbgw_restore();
-- Not running, a saved pool's name is free to make a pool of, but not to
-- save another role's under (42710); nothing is made.
SET ROLE regress_dynbgw_pool_owner;
SELECT dynbgw_pool_drop('regress_saved');
SET ROLE regress_dynbgw_pool_other;
SELECT dynbgw_pool_create('regress_saved', 1, persist => true);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS pools FROM dynbgw_pools WHERE name = 'regress_saved';
SET ROLE regress_dynbgw_pool_owner;
SELECT dynbgw_pool_drop('regress_saved', forget => true);
SELECT count(*) AS saved FROM dynbgw_pool_definitions;
RESET ROLE;


-- A saved pool whose role is gone is dumped as a comment: named as NULL,
-- it would run as its owner.
CREATE ROLE regress_dynbgw_pool_gone LOGIN;
GRANT regress_dynbgw_pool_gone TO regress_dynbgw_pool_owner;
SET ROLE regress_dynbgw_pool_owner;
SELECT dynbgw_pool_create('regress_gone', 1, role => 'regress_dynbgw_pool_gone', persist => true);
SELECT dynbgw_pool_drop('regress_gone');
RESET ROLE;
DROP ROLE regress_dynbgw_pool_gone;
SET ROLE regress_dynbgw_pool_owner;
SELECT * FROM dynbgw_dump_definitions();
SELECT n, pid, error, pool FROM dynbgw_restore();
DELETE FROM dynbgw_pool_definitions;
RESET ROLE;

-- Dropped, the pool's workers are gone, and it takes no more tasks; its
-- tasks stay in the history.  Dropping again is a notice.
SET ROLE regress_dynbgw_pool_owner;
SELECT dynbgw_pool_drop('regress_p');
SELECT count(*) AS workers FROM dynbgw_workers;
SELECT count(*) AS pools FROM dynbgw_pools;
SELECT dynbgw_submit('regress_p', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_pool_drop('regress_p');
SELECT outcome, count(*) FROM dynbgw_tasks WHERE pool = 'regress_p' GROUP BY 1 ORDER BY 1;
RESET ROLE;

DROP TABLE regress_pool_log;
DROP FUNCTION pool_error(text);
REVOKE CREATE ON SCHEMA public FROM regress_dynbgw_pool_owner;
DROP ROLE regress_dynbgw_pool_member, regress_dynbgw_pool_other,
    regress_dynbgw_pool_alt, regress_dynbgw_pool_owner;

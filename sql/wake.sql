--
-- wake: dynbgw_wake() and retry, what one session can see of them
--
-- Who may wake a worker, what a wake of no live worker says, the wakes a
-- transaction may not make, and retry's arguments.  When runs happen is
-- t/027_wake_and_retry.pl's.
--

CREATE ROLE regress_dynbgw_wake_owner LOGIN;
CREATE ROLE regress_dynbgw_wake_member LOGIN IN ROLE regress_dynbgw_wake_owner;
CREATE ROLE regress_dynbgw_wake_other LOGIN;
CREATE ROLE regress_dynbgw_wake_signal LOGIN IN ROLE pg_signal_backend;
GRANT dynbgw_user TO regress_dynbgw_wake_owner, regress_dynbgw_wake_member,
    regress_dynbgw_wake_other, regress_dynbgw_wake_signal;

-- Nothing runs as number 1: false, with a notice.
SELECT dynbgw_wake(1) AS woken;
SELECT dynbgw_wake(NULL) AS woken;
SELECT dynbgw_wake(0);
SELECT dynbgw_wake(100000);

-- The role that launched a worker, members of its role and superusers may
-- wake it; as for a stop, so may pg_signal_backend.
SET ROLE regress_dynbgw_wake_owner;
SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour') IS NOT NULL AS launched;
SELECT dynbgw_wake(1) AS woken_by_launcher;
SET ROLE regress_dynbgw_wake_member;
SELECT dynbgw_wake(1) AS woken_by_member;
SET ROLE regress_dynbgw_wake_signal;
SELECT dynbgw_wake(1) AS woken_by_pg_signal_backend;
RESET ROLE;
SELECT dynbgw_wake(1) AS woken_by_superuser;

-- Others learn nothing but the refusal.
SET ROLE regress_dynbgw_wake_other;
SELECT dynbgw_wake(1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A superuser's worker: only superusers.
SELECT dynbgw_launch(2, 'SELECT 1', naptime => '1 hour') IS NOT NULL AS launched;
SET ROLE regress_dynbgw_wake_signal;
SELECT dynbgw_wake(2);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A transaction that woke a worker cannot be prepared, as one that
-- notified cannot; the wake is dropped with it.
BEGIN;
SELECT dynbgw_wake(1) AS woken;
PREPARE TRANSACTION 'regress_dynbgw_wake';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS prepared FROM pg_prepared_xacts;
SELECT dynbgw_stop(n => 1) AS stopped;

-- A library's entry point has no runs to start.
SELECT dynbgw_launch_function(3, 'dynbgw', 'dynbgw_sleep_main') IS NOT NULL AS launched;
SELECT dynbgw_wake(3);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(n => i) AS stopped FROM generate_series(2, 3) AS i ORDER BY i;

-- A stopped worker is not started by a wake.
SELECT dynbgw_wake(2) AS woken;

--
-- retry and retry_delay
--
SELECT dynbgw_launch(1, 'SELECT 1', retry => -1);
SELECT dynbgw_launch(1, 'SELECT 1', retry => 1001);
SELECT dynbgw_launch(1, 'SELECT 1', retry_delay => '-1 s');
SELECT dynbgw_launch(1, 'SELECT 1', retry_delay => '367 days');
SELECT dynbgw_launch(1, naptime => '1 hour', retry => 1);
SELECT count(*) AS registered FROM dynbgw_workers;

-- NULL is the default; the view shows what a worker was launched with.
SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour', retry => NULL,
                     retry_delay => NULL) IS NOT NULL AS launched;
SELECT dynbgw_launch(2, 'SELECT 1', naptime => '1 hour', retry => 1000,
                     retry_delay => '0') IS NOT NULL AS launched;
SELECT wait_until('(SELECT count(*) = 2 FROM dynbgw_workers WHERE runs = 1)');
SELECT n, retry, retry_delay, last_trigger FROM dynbgw_workers ORDER BY n;
SELECT r.n, r.trigger, r.attempt FROM dynbgw_runs r JOIN dynbgw_workers w USING (n)
WHERE r.started >= w.launched_at ORDER BY r.n;
SELECT dynbgw_stop(n => i) AS stopped FROM generate_series(1, 2) AS i ORDER BY i;

-- Saved definitions keep them, and so does their dump.
SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour', retry => 2,
                     retry_delay => '30 s', persist => true) IS NOT NULL AS launched;
SELECT n, retry, retry_delay FROM dynbgw_definitions;
SELECT * FROM dynbgw_dump_definitions();
SELECT dynbgw_stop(n => 1, forget => true) AS stopped;
SELECT * FROM dynbgw_restore();
SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour', retry => 2,
                     retry_delay => '30 s', persist => true) IS NOT NULL AS launched;
SELECT dynbgw_stop(n => 1) AS stopped;
SELECT n, error IS NULL AS restored FROM dynbgw_restore();
SELECT n, retry, retry_delay FROM dynbgw_workers;
SELECT dynbgw_stop(n => 1, forget => true) AS stopped;

-- A column whose type the table's owner changed is refused, not read as
-- the type it should have.
ALTER TABLE dynbgw_definitions ALTER COLUMN retry_delay TYPE bigint USING NULL;
INSERT INTO dynbgw_definitions (n, command, naptime, role, retry, retry_delay)
VALUES (1, 'SELECT 1', '1 hour', current_user::text::regrole, 1, 4096);
SELECT * FROM dynbgw_restore();
\echo :LAST_ERROR_SQLSTATE
DELETE FROM dynbgw_definitions;
ALTER TABLE dynbgw_definitions ALTER COLUMN retry_delay TYPE interval USING NULL;
SELECT count(*) AS registered FROM dynbgw_workers;

DROP ROLE regress_dynbgw_wake_owner, regress_dynbgw_wake_member,
    regress_dynbgw_wake_other, regress_dynbgw_wake_signal;

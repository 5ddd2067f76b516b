-- Set-up for t/032_load.pl: what the pgbench scripts (t/load_launch.sql,
-- t/load_list.sql, t/load_stop.sql) call.
--
-- pgbench aborts a client at the first error, so each call catches the
-- errors that concurrent sessions legitimately cause each other and counts
-- them in load_events by SQLSTATE; any other error is raised and aborts the
-- client, which fails the test:
--   42710  the number is already taken (if_running => 'error')
--   53000  no free max_worker_processes slot
--   57014  another session stopped the worker before it was ready
--          (only with that message; a real cancel is not expected)

CREATE TABLE load_events (
    op       text NOT NULL,     -- launch, stop, stop_none, list
    sqlstate text NOT NULL,     -- 00000 when the call succeeded
    pid      integer,           -- the PID a launch returned
    listed   integer            -- for 53000: how many workers the view listed
);

CREATE FUNCTION load_launch(n integer, variant integer) RETURNS void
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
DECLARE
    st  text := '00000';
    msg text;
    p   integer;
    listed integer;
BEGIN
    BEGIN
        IF variant = 0 THEN
            p := dynbgw_launch(n, naptime => '50 ms');
        ELSIF variant = 1 THEN
            p := dynbgw_launch(n, 'SELECT 1', naptime => '50 ms');
        ELSIF variant = 2 THEN
            p := dynbgw_launch(n, 'SELECT count(*) FROM pg_class',
                               naptime => '50 ms', if_running => 'skip');
        ELSE
            p := dynbgw_launch(n, 'SELECT 1', naptime => '50 ms',
                               if_running => 'replace');
        END IF;
    EXCEPTION
        WHEN duplicate_object OR insufficient_resources THEN
            st := SQLSTATE;
            IF st = '53000' THEN
                SELECT count(*) INTO listed FROM dynbgw_workers;
            END IF;
        WHEN query_canceled THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
            IF msg NOT LIKE 'dynbgw worker % was stopped before it was ready' THEN
                RAISE;
            END IF;
            st := SQLSTATE;
    END;
    INSERT INTO load_events VALUES ('launch', st, p, listed);
END
$$;

-- Stop worker n by PID or by number.  No error is expected.
CREATE FUNCTION load_stop(n integer, by_pid boolean) RETURNS void
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
DECLARE
    stopped boolean;
BEGIN
    IF by_pid THEN
        stopped := dynbgw_stop(dynbgw_pid(n));
    ELSE
        stopped := dynbgw_stop(n => n);
    END IF;
    INSERT INTO load_events
        VALUES (CASE WHEN stopped THEN 'stop' ELSE 'stop_none' END, '00000');
END
$$;

-- List the workers and check that every row makes sense on its own: a
-- number in range, a known state, and a PID unless it is still starting.
CREATE FUNCTION load_list() RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(format('%s/%s/%s', n, pid, state), ', ') INTO bad
      FROM dynbgw_workers
     WHERE n NOT BETWEEN 1 AND 8
        OR state NOT IN ('starting', 'idle', 'running', 'stopping')
        OR (pid IS NULL AND state <> 'starting');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'inconsistent dynbgw_workers rows: %', bad;
    END IF;
    INSERT INTO load_events VALUES ('list', '00000');
END
$$;

-- bench/bench.sql: helpers that bench/run loads into its throwaway database.
--
-- Every duration here is a clock_timestamp() delta taken inside the server,
-- around the one call being measured, so psql start-up and the client round
-- trip are never part of it.  Samples go to "sample", scalar results to
-- "metric"; report() turns both into the Markdown table.

CREATE EXTENSION dynbgw;

-- One row per timed operation, in milliseconds.
CREATE UNLOGGED TABLE sample (test text NOT NULL, ms float8 NOT NULL);
-- Rates, sizes and totals, by name.
CREATE UNLOGGED TABLE metric (key text PRIMARY KEY, val float8);
-- Run start times written by the schedule-precision worker and its baseline.
CREATE UNLOGGED TABLE ticks (src text NOT NULL, t timestamptz NOT NULL);

-- ---- small tools ----

CREATE FUNCTION ms(t0 timestamptz, t1 timestamptz) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$ SELECT extract(epoch FROM t1 - t0)::float8 * 1000 $$;

CREATE FUNCTION put(k text, v float8) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO metric VALUES (k, v)
    ON CONFLICT (key) DO UPDATE SET val = excluded.val
$$;

CREATE FUNCTION add(k text, v float8) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO metric VALUES (k, v)
    ON CONFLICT (key) DO UPDATE SET val = metric.val + excluded.val
$$;

CREATE FUNCTION m(k text) RETURNS float8
LANGUAGE sql STABLE AS $$ SELECT val FROM metric WHERE key = k $$;

CREATE FUNCTION pct(t text, p float8) RETURNS float8
LANGUAGE sql STABLE AS $$
    SELECT percentile_cont(p) WITHIN GROUP (ORDER BY ms) FROM sample WHERE test = t
$$;

CREATE FUNCTION cnt(t text) RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT count(*) FROM sample WHERE test = t $$;

-- Poll until cond (an SQL boolean expression) holds, failing after timeout:
-- waits never count on a fixed sleep being long enough.
CREATE FUNCTION wait_for(cond text, timeout interval DEFAULT '30 s',
                         poll float8 DEFAULT 0.001) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout;
    ok boolean;
BEGIN
    LOOP
        -- pg_stat_activity is otherwise frozen for the whole transaction.
        PERFORM pg_stat_clear_snapshot();
        EXECUTE 'SELECT ' || cond INTO ok;
        EXIT WHEN ok;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'timed out after % waiting for: %', timeout, cond;
        END IF;
        PERFORM pg_sleep(poll);
    END LOOP;
END $$;

CREATE FUNCTION stop_or_fail(pid int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT dynbgw_stop(pid) THEN
        RAISE EXCEPTION 'dynbgw_stop(%) failed', pid;
    END IF;
END $$;

-- ---- 1. launch latency ----

-- Rounds of (idle worker, bare entry point), interleaved so that both see the
-- same machine state.  Each is stopped outside its timing.  The first rounds
-- warm up the library, the registry and the caches and are not recorded.
CREATE FUNCTION bench_launch(k int, warmup int DEFAULT 5) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
    pid int;
BEGIN
    FOR i IN 1 .. warmup + k LOOP
        t0 := clock_timestamp();
        pid := dynbgw_launch(1);
        t1 := clock_timestamp();
        IF i > warmup THEN
            INSERT INTO sample VALUES ('launch', ms(t0, t1));
        END IF;
        PERFORM stop_or_fail(pid);

        t0 := clock_timestamp();
        pid := dynbgw_launch_function(1, 'dynbgw', 'dynbgw_sleep_main');
        t1 := clock_timestamp();
        IF i > warmup THEN
            INSERT INTO sample VALUES ('fork_floor', ms(t0, t1));
        END IF;
        PERFORM stop_or_fail(pid);
    END LOOP;
END $$;

-- ---- 2. stop latency ----

-- Stop an idle worker, then one inside pg_sleep(3600); k of each.
CREATE FUNCTION bench_stop(k int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
    pid int;
BEGIN
    FOR i IN 1 .. k LOOP
        pid := dynbgw_launch(1);
        t0 := clock_timestamp();
        PERFORM stop_or_fail(pid);
        t1 := clock_timestamp();
        INSERT INTO sample VALUES ('stop_idle', ms(t0, t1));

        -- Ready is not yet running: wait until it really sleeps in the command.
        pid := dynbgw_launch(1, 'SELECT pg_sleep(3600)');
        PERFORM wait_for(format('EXISTS (SELECT FROM pg_stat_activity
                                         WHERE pid = %s AND wait_event = %L)',
                                pid, 'PgSleep'));
        t0 := clock_timestamp();
        PERFORM stop_or_fail(pid);
        t1 := clock_timestamp();
        INSERT INTO sample VALUES ('stop_running', ms(t0, t1));
    END LOOP;
END $$;

-- The baseline: terminate ordinary backends (all inside pg_sleep) and wait
-- for each to be gone, the way pg_terminate_backend(pid, timeout) does.
CREATE FUNCTION bench_terminate(pids int[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
    pid int;
BEGIN
    FOREACH pid IN ARRAY pids LOOP
        t0 := clock_timestamp();
        IF NOT pg_terminate_backend(pid, 10000) THEN
            RAISE EXCEPTION 'pg_terminate_backend(%) failed', pid;
        END IF;
        t1 := clock_timestamp();
        INSERT INTO sample VALUES ('terminate', ms(t0, t1));
    END LOOP;
END $$;

-- ---- 3. job throughput ----

-- Runs per second of worker wn: its run counter read at two server times.
-- The pg_sleep only sets the window's rough length; its exact length comes
-- from the clock.
CREATE FUNCTION runs_per_s(wn int, secs float8) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
    r0 bigint;
    r1 bigint;
    t0 timestamptz;
    t1 timestamptz;
BEGIN
    SELECT runs, clock_timestamp() INTO r0, t0 FROM dynbgw_workers WHERE n = wn;
    PERFORM pg_sleep(secs);
    SELECT runs, clock_timestamp() INTO r1, t1 FROM dynbgw_workers WHERE n = wn;
    RETURN (r1 - r0) / (ms(t0, t1) / 1000);
END $$;

-- The in-server floor: the same statement and a commit per run, with no
-- process boundary at all.
CREATE PROCEDURE bench_floor(secs float8)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    t1 timestamptz;
    runs bigint := 0;
BEGIN
    LOOP
        EXECUTE 'SELECT 1';
        COMMIT;
        runs := runs + 1;
        t1 := clock_timestamp();
        EXIT WHEN t1 >= t0 + secs * interval '1 second';
    END LOOP;
    PERFORM put('floor_rps', runs / (ms(t0, t1) / 1000));
END $$;

-- ---- 3b. outcomes ----

-- How soon dynbgw_wait() returns after the end of the launch it waits for:
-- from the moment the worker recorded its end (ended_at) to the waiter's
-- clock.  The launch returns while the run still sleeps, so the wait has
-- begun before the end comes.
CREATE FUNCTION bench_wait(k int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. k LOOP
        PERFORM dynbgw_launch(3, 'SELECT pg_sleep(0.01)', runs => 1);
        INSERT INTO sample
            SELECT 'wait_wakeup', ms(ended_at, clock_timestamp()) FROM dynbgw_wait(3);
    END LOOP;
END $$;

-- ---- 3c. results as rows ----

-- What both extensions run: 1,000 rows of an integer and a 32-byte text.
CREATE FUNCTION result_query() RETURNS text
LANGUAGE sql IMMUTABLE AS
$$ SELECT 'SELECT g, md5(g::text) AS h FROM generate_series(1, 1000) AS g' $$;

-- From the call to having the 1,000 rows in this session: dynbgw launches,
-- waits and reads (the rows go through the function's tuplestore, as
-- pg_background_result's do); pg_background, where installed, launches and
-- reads.  Then dynbgw's reading alone, in both forms, of the kept result.
CREATE FUNCTION bench_result(k int, with_pg_background boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    got bigint;
BEGIN
    FOR i IN 1 .. k LOOP
        t0 := clock_timestamp();
        PERFORM dynbgw_launch(3, result_query(), runs => 1, keep_result => true);
        PERFORM FROM dynbgw_wait(3) WHERE outcome = 'succeeded';
        SELECT count(*) INTO got FROM dynbgw_result(3) AS (g integer, h text);
        INSERT INTO sample VALUES ('result_dynbgw', ms(t0, clock_timestamp()));
        IF got <> 1000 THEN
            RAISE EXCEPTION 'dynbgw_result returned % rows', got;
        END IF;

        t0 := clock_timestamp();
        PERFORM count(*) FROM dynbgw_result(3) AS (g integer, h text);
        INSERT INTO sample VALUES ('result_read', ms(t0, clock_timestamp()));
        t0 := clock_timestamp();
        PERFORM count(*) FROM dynbgw_result_json(3);
        INSERT INTO sample VALUES ('result_read_json', ms(t0, clock_timestamp()));

        IF with_pg_background THEN
            t0 := clock_timestamp();
            EXECUTE 'SELECT count(*) FROM pg_background_result(pg_background_launch($1)) AS (g integer, h text)'
                INTO got USING result_query();
            INSERT INTO sample VALUES ('result_pg_background', ms(t0, clock_timestamp()));
            IF got <> 1000 THEN
                RAISE EXCEPTION 'pg_background_result returned % rows', got;
            END IF;
        END IF;
    END LOOP;
    PERFORM put('result_bytes_per_row', size::float8 / rows) FROM dynbgw_results WHERE n = 3;
    -- The same rows as COPY writes them as text, for scale.
    EXECUTE format('SELECT put(''result_text_bytes_per_row'', avg(octet_length(r::text) - 1)) FROM (%s) AS r',
                   result_query());
    PERFORM dynbgw_drop_result(3);
END $$;

-- ---- 4. schedule precision ----

-- A session that sleeps with pg_sleep to each whole second and notes when
-- it woke: what a cron schedule's runs are compared with.
CREATE PROCEDURE bench_sleep_seconds(runs int, source text)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. runs LOOP
        PERFORM pg_sleep(extract(epoch FROM date_trunc('second', clock_timestamp())
                                 + interval '1 second' - clock_timestamp()));
        INSERT INTO ticks VALUES (source, clock_timestamp());
        COMMIT;
    END LOOP;
END $$;

-- How long after its whole second each run of source started.
CREATE FUNCTION cron_errors(source text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO sample
        SELECT source, ms(date_trunc('second', t), t) FROM ticks WHERE src = source
$$;

-- Milliseconds process pid has spent runnable but waiting for a CPU (the
-- kernel's schedstat run_delay); NULL once the process is gone.  Late runs
-- with as much CPU wait behind them were late because the CPU was busy.
CREATE FUNCTION cpu_wait_ms(pid int) RETURNS float8
LANGUAGE plpgsql AS $$
BEGIN
    RETURN split_part(pg_read_file(format('/proc/%s/schedstat', pid)), ' ', 2)::float8 / 1e6;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;

-- Wait until the process is gone, polling gently, and note how long it
-- waited for a CPU meanwhile.
CREATE FUNCTION watch_until_gone(pid int, timeout interval, key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout;
    first float8 := cpu_wait_ms(pid);
    last float8 := first;
    cur float8;
BEGIN
    LOOP
        cur := cpu_wait_ms(pid);
        EXIT WHEN cur IS NULL;
        last := cur;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'process % still there after %', pid, timeout;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    PERFORM put(key, last - first);
END $$;

-- The baseline: an ordinary session that sleeps with pg_sleep until each
-- run's start and inserts, one transaction per run like the worker.
CREATE PROCEDURE bench_sleep_schedule(runs int, naptime interval)
LANGUAGE plpgsql AS $$
DECLARE
    cpu_wait float8 := cpu_wait_ms(pg_backend_pid());
    start timestamptz := clock_timestamp();
BEGIN
    FOR k IN 0 .. runs - 1 LOOP
        PERFORM pg_sleep(greatest(0, extract(epoch FROM start + k * naptime
                                                         - clock_timestamp())));
        INSERT INTO ticks VALUES ('pg_sleep', clock_timestamp());
        COMMIT;
    END LOOP;
    PERFORM put('prec_pg_sleep_cpu_wait', cpu_wait_ms(pg_backend_pid()) - cpu_wait);
END $$;

-- Run k should start at t_0 + k * naptime; its error is how far it was off.
CREATE FUNCTION tick_errors(source text, naptime interval)
RETURNS TABLE (k bigint, err float8)
LANGUAGE sql STABLE AS $$
    WITH o AS (SELECT t, row_number() OVER (ORDER BY t) - 1 AS k
               FROM ticks WHERE src = source)
    SELECT k, ms(first_value(t) OVER (ORDER BY k) + k * naptime, t)
    FROM o ORDER BY k
$$;

CREATE FUNCTION precision_metrics(source text, naptime interval) RETURNS void
LANGUAGE sql AS $$
    WITH te AS (SELECT * FROM tick_errors(source, naptime)),
         mid AS (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY err) AS med FROM te),
         e AS (SELECT k, err, err - med AS dev FROM te, mid)
    SELECT put(p || 'n', count(*)),
           put(p || 'p50', percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(err))),
           put(p || 'p99', percentile_cont(0.99) WITHIN GROUP (ORDER BY abs(err))),
           put(p || 'max', max(abs(err))),
           put(p || 'drift', (array_agg(err ORDER BY k DESC))[1]
                             - (array_agg(err ORDER BY k))[1]),
           -- Least-squares slope over the whole series: drift without the
           -- jitter of the last run.
           put(p || 'fit_drift', regr_slope(err, k) * (count(*) - 1)),
           -- Jitter around the grid the runs actually follow, that is
           -- without the first run's own lateness.
           put(p || 'dev_p99', percentile_cont(0.99) WITHIN GROUP (ORDER BY abs(dev))),
           put(p || 'late_sum', sum(greatest(dev, 0)))
    FROM e, (SELECT 'prec_' || source || '_' AS p) AS prefix
    GROUP BY p
$$;

-- ---- 4c. queue: a woken worker against a polling one ----

-- A job queue as an application keeps it; "handled" is the bench's own
-- bookkeeping: when each row's transaction committed (its commit timestamp,
-- hence track_commit_timestamp) and when the worker's run saw it.
CREATE TABLE queue (id bigserial PRIMARY KEY, payload text);
CREATE UNLOGGED TABLE handled (id bigint NOT NULL, committed timestamptz,
                               seen timestamptz NOT NULL, src text NOT NULL);

-- Milliseconds process pid has spent on a CPU so far (schedstat).
CREATE FUNCTION cpu_ms(pid int) RETURNS float8
LANGUAGE sql AS $$
    SELECT split_part(pg_read_file(format('/proc/%s/schedstat', pid)), ' ', 1)::float8 / 1e6
$$;

-- Launch worker wn as the consumer, noting its rows as source: one statement,
-- so that what it deletes is exactly what it notes.  The row's xmin is the
-- transaction that queued it; FOR UPDATE only sets xmax.
CREATE FUNCTION queue_launch(wn int, source text, naptime interval) RETURNS int
LANGUAGE sql AS $$
    SELECT dynbgw_launch(wn, format(
        'WITH taken AS (DELETE FROM queue
                        WHERE id IN (SELECT id FROM queue ORDER BY id LIMIT 1000
                                     FOR UPDATE SKIP LOCKED)
                        RETURNING id, pg_xact_commit_timestamp(xmin) AS committed)
         INSERT INTO handled SELECT id, committed, clock_timestamp(), %L FROM taken',
        source), naptime => naptime)
$$;

-- The waking trigger, for worker TG_ARGV[0].  Per statement: the rows of one
-- statement need one run, and wakes coalesce anyway.
CREATE FUNCTION queue_wake() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dynbgw_wake(TG_ARGV[0]::int);
    RETURN NULL;
END $$;

-- Whether the queue became empty within timeout, polling every millisecond.
CREATE FUNCTION queue_drained(timeout interval) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout;
BEGIN
    WHILE EXISTS (SELECT FROM queue) LOOP
        IF clock_timestamp() > deadline THEN
            RETURN false;
        END IF;
        PERFORM pg_sleep(0.001);
    END LOOP;
    RETURN true;
END $$;

-- Queue rows, one transaction each, 2 to 20 ms apart: random gaps, so that
-- they do not keep one phase against a poller's fixed rate, from a fixed seed,
-- so that every variant gets the same ones.  The first rows only warm up the
-- worker (its plans, its caches).  Then wait until the worker has handled all
-- and put, under queue_<source>_: the rows queued and handled, the CPU (ms) of
-- the worker from the first measured row to the last one handled and how
-- long it waited for a CPU meanwhile, its runs by trigger and how many of
-- them found nothing.  Samples: latency of each row handled.
CREATE PROCEDURE bench_enqueue(source text, wpid int, rows int, warmup int DEFAULT 5)
LANGUAGE plpgsql AS $$
DECLARE
    p text := 'queue_' || source || '_';
    first_id bigint;
    last_id bigint;
    t0 timestamptz;
    t1 timestamptz;
    w0 float8;
    wait0 float8;
BEGIN
    PERFORM setseed(0.25);
    FOR i IN 1 .. warmup LOOP
        INSERT INTO queue (payload) VALUES ('warm-up');
        COMMIT;
        PERFORM pg_sleep(0.002 + random() * 0.018);
    END LOOP;
    IF NOT queue_drained('5 s') THEN
        RAISE EXCEPTION 'queue %: the warm-up rows were not handled within 5 s', source;
    END IF;

    t0 := clock_timestamp();
    w0 := cpu_ms(wpid);
    wait0 := cpu_wait_ms(wpid);
    FOR i IN 1 .. rows LOOP
        INSERT INTO queue (payload) VALUES (source) RETURNING id INTO last_id;
        first_id := coalesce(first_id, last_id);
        COMMIT;
        PERFORM pg_sleep(0.002 + random() * 0.018);
    END LOOP;
    -- Not an error: a row never handled is a finding, reported as such.
    PERFORM queue_drained('10 s');
    PERFORM put(p || 'worker_ms', cpu_ms(wpid) - w0),
            put(p || 'worker_cpu_wait_ms', cpu_wait_ms(wpid) - wait0);
    t1 := clock_timestamp();
    PERFORM put(p || 'rows', rows);
    PERFORM put(p || 'handled', (SELECT count(*) FROM handled
                                 WHERE src = source AND id BETWEEN first_id AND last_id));
    INSERT INTO sample
        SELECT 'queue_' || source, ms(committed, seen) FROM handled
        WHERE src = source AND id BETWEEN first_id AND last_id;
    -- The part before the run that saw the row started: the wake's own.
    INSERT INTO sample
        SELECT 'queue_' || source || '_start', ms(h.committed, r.started)
        FROM handled h
        JOIN (SELECT started, finished FROM dynbgw_runs WHERE pid = wpid) AS r
          ON h.seen BETWEEN r.started AND r.finished
        WHERE h.src = source AND h.id BETWEEN first_id AND last_id;
    PERFORM put(p || 'runs_' || coalesce(r.trigger, 'null'), count(*)),
            put(p || 'empty_' || coalesce(r.trigger, 'null'),
                count(*) FILTER (WHERE r.result = 'INSERT 0 0'))
    FROM dynbgw_runs r
    WHERE r.pid = wpid AND r.started BETWEEN t0 AND t1
    GROUP BY r.trigger;
    -- Left over by a lost wake: not for the next variant to take.
    DELETE FROM queue;
END $$;

-- What the waking trigger costs the session that queues: rows inserted and
-- committed back to back, in blocks that alternate between the queue (its
-- trigger wakes worker 4, which must be up) and a twin without a trigger; the
-- first pair of blocks only warms up.  A process's schedstat is brought up to
-- date when it leaves the CPU: hence a short sleep before each reading.
CREATE TABLE queue_quiet (LIKE queue INCLUDING ALL);

CREATE PROCEDURE bench_wake_cost(rows int, blocks int DEFAULT 10)
LANGUAGE plpgsql AS $$
DECLARE
    me int := pg_backend_pid();
    c0 float8;
    quiet boolean;
    wake_ms float8 := 0;
    quiet_ms float8 := 0;
    woken int := 0;
BEGIN
    FOR b IN -1 .. 2 * blocks LOOP
        quiet := b % 2 = 0;
        PERFORM pg_sleep(0.001);
        c0 := cpu_ms(me);
        FOR i IN 1 .. rows / blocks LOOP
            IF quiet THEN
                INSERT INTO queue_quiet (payload) VALUES ('cost');
            ELSE
                INSERT INTO queue (payload) VALUES ('cost');
                woken := woken + 1;
            END IF;
            COMMIT;
        END LOOP;
        PERFORM pg_sleep(0.001);
        IF b < 1 THEN
            CONTINUE;
        ELSIF quiet THEN
            quiet_ms := quiet_ms + (cpu_ms(me) - c0);
        ELSE
            wake_ms := wake_ms + (cpu_ms(me) - c0);
        END IF;
    END LOOP;
    PERFORM put('queue_cost_rows', blocks * (rows / blocks)),
            put('queue_cost_wake_ms', wake_ms),
            put('queue_cost_quiet_ms', quiet_ms);
    -- Rows committed while a run was under way: the wakes must not lose them.
    PERFORM queue_drained('10 s');
    PERFORM put('queue_cost_woken', woken),
            put('queue_cost_left', (SELECT count(*) FROM queue));
    DELETE FROM queue;
    TRUNCATE queue_quiet;
END $$;

-- The worker's runs during a variant's window, by trigger, for the report.
CREATE FUNCTION queue_runs(source text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('%s runs (%s), %s of them found no row',
                  coalesce(sum(val) FILTER (WHERE starts_with(key, r)), 0),
                  string_agg(format('%s %s', val, substr(key, length(r) + 1)), ', ' ORDER BY key)
                      FILTER (WHERE starts_with(key, r)),
                  coalesce(sum(val) FILTER (WHERE starts_with(key, e)), 0))
    FROM metric, (SELECT 'queue_' || source || '_runs_' AS r,
                         'queue_' || source || '_empty_' AS e) AS prefix
$$;

-- ---- 5. scale ----

-- Launch workers 1..cnt (idle), one after the other; a sample of the total.
CREATE FUNCTION bench_scale_launch(cnt int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
BEGIN
    -- Loading the library into this session is not part of any launch.
    PERFORM dynbgw_pid(1);
    t0 := clock_timestamp();
    FOR i IN 1 .. cnt LOOP
        PERFORM dynbgw_launch(i);
    END LOOP;
    INSERT INTO sample VALUES ('scale_launch_' || cnt, ms(t0, clock_timestamp()));
END $$;

-- One full read of the view, reps times.
CREATE FUNCTION bench_view(cnt int, reps int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
BEGIN
    FOR i IN 1 .. reps LOOP
        t0 := clock_timestamp();
        PERFORM * FROM dynbgw_workers;
        t1 := clock_timestamp();
        INSERT INTO sample VALUES ('view_' || cnt, ms(t0, t1));
    END LOOP;
END $$;

-- Stop all cnt workers, one after the other; a sample of the total.
CREATE FUNCTION bench_scale_stop(cnt int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    pids int[] := ARRAY(SELECT pid FROM dynbgw_workers WHERE pid IS NOT NULL);
    t0 timestamptz := clock_timestamp();
    pid int;
BEGIN
    IF cardinality(pids) <> cnt THEN
        RAISE EXCEPTION 'expected % workers, found %', cnt, cardinality(pids);
    END IF;
    FOREACH pid IN ARRAY pids LOOP
        PERFORM stop_or_fail(pid);
    END LOOP;
    INSERT INTO sample VALUES ('scale_stop_' || cnt, ms(t0, clock_timestamp()));
END $$;

-- ---- 6. pools ----

-- From a task's submission to its start on a pool whose workers all wait:
-- one task at a time, each waited for before the next.  started and
-- submitted are the task's own, as dynbgw_tasks shows them (here from the
-- row dynbgw_wait_task returns).  The first tasks only warm up.
CREATE FUNCTION bench_pool_start(pool text, k int, warmup int DEFAULT 10) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t dynbgw_task;
BEGIN
    FOR i IN 1 .. warmup + k LOOP
        SELECT * INTO t FROM dynbgw_wait_task(dynbgw_submit(pool, 'SELECT 1'), '10 s');
        IF t.outcome IS DISTINCT FROM 'succeeded' THEN
            RAISE EXCEPTION 'task % of pool %: %', t.id, pool, coalesce(t.outcome, t.state);
        END IF;
        IF i > warmup THEN
            INSERT INTO sample VALUES ('pool_start', ms(t.submitted, t.started));
        END IF;
    END LOOP;
END $$;

-- From the call to the one-statement command done, as one SQL statement
-- each: submit and wait on the pool; pg_background, where installed,
-- launches a worker and reads its row.  Both go through EXECUTE, parsed
-- and planned each time, as a client's statement would be.
CREATE FUNCTION bench_pool_call(pool text, k int, with_pg_background boolean,
                                warmup int DEFAULT 10) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    t1 timestamptz;
    outcome text;
    x int;
BEGIN
    FOR i IN 1 .. warmup + k LOOP
        t0 := clock_timestamp();
        EXECUTE format('SELECT (dynbgw_wait_task(dynbgw_submit(%L, ''SELECT 1''))).outcome', pool)
            INTO outcome;
        t1 := clock_timestamp();
        IF outcome IS DISTINCT FROM 'succeeded' THEN
            RAISE EXCEPTION 'task of pool %: %', pool, outcome;
        END IF;
        IF i > warmup THEN
            INSERT INTO sample VALUES ('pool_call', ms(t0, t1));
        END IF;

        IF with_pg_background THEN
            t0 := clock_timestamp();
            EXECUTE 'SELECT * FROM pg_background_result(pg_background_launch(''SELECT 1'')) AS (x int)'
                INTO x;
            t1 := clock_timestamp();
            IF x IS DISTINCT FROM 1 THEN
                RAISE EXCEPTION 'pg_background_result returned %', x;
            END IF;
            IF i > warmup THEN
                INSERT INTO sample VALUES ('pool_call_pg_background', ms(t0, t1));
            END IF;
        END IF;
    END LOOP;
END $$;

-- k SELECT 1 tasks through the pool, submitted back to back (waiting for
-- room if the queue is full), then the last ones waited for: from the
-- first submission to the end of the last task.  The pool's workers take
-- the oldest task first, so once the last task of each worker has ended,
-- all have.  The history keeps only the last dynbgw.history_size tasks:
-- hence the submitting side's clock.
CREATE FUNCTION bench_pool_throughput(pool text, k int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    workers int := (SELECT size FROM dynbgw_pools p WHERE p.name = pool);
    last_ids bigint[];
    first_id bigint;
    id bigint;
    t dynbgw_task;
    t0 timestamptz;
    t1 timestamptz;
    t2 timestamptz;
BEGIN
    t0 := clock_timestamp();
    FOR i IN 1 .. k LOOP
        id := dynbgw_submit(pool, 'SELECT 1', wait_for_slot => '1 min');
        first_id := coalesce(first_id, id);
        last_ids[i % workers] := id;
    END LOOP;
    t1 := clock_timestamp();
    FOREACH id IN ARRAY last_ids LOOP
        SELECT * INTO t FROM dynbgw_wait_task(id, '1 min');
        IF t.outcome IS DISTINCT FROM 'succeeded' THEN
            RAISE EXCEPTION 'task % of pool %: %', t.id, pool, coalesce(t.outcome, t.state);
        END IF;
    END LOOP;
    t2 := clock_timestamp();
    PERFORM put('pool_tasks', k),
            put('pool_tps', k / (ms(t0, t2) / 1000)),
            put('pool_submit_ms', ms(t0, t1));
    -- Of those the history still has, how many did not succeed.
    PERFORM put('pool_not_succeeded', count(*) FILTER (WHERE outcome <> 'succeeded')),
            put('pool_checked', count(*))
    FROM dynbgw_tasks WHERE dynbgw_tasks.id BETWEEN first_id AND first_id + k - 1;
END $$;

-- The baseline: pg_background launching a worker per SELECT 1, two at a
-- time as the pool of two runs them, each pair's rows read before the
-- next pair.  The first pairs only warm up.
CREATE FUNCTION bench_pool_pg_background(k int, warmup int DEFAULT 5) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    p1 int;
    p2 int;
    got bigint;
BEGIN
    FOR i IN 1 .. warmup + k / 2 LOOP
        IF i = warmup + 1 THEN
            t0 := clock_timestamp();
        END IF;
        EXECUTE 'SELECT pg_background_launch($1)' INTO p1 USING 'SELECT 1';
        EXECUTE 'SELECT pg_background_launch($1)' INTO p2 USING 'SELECT 1';
        EXECUTE 'SELECT count(*) FROM pg_background_result($1) AS (x int)' INTO got USING p1;
        EXECUTE 'SELECT count(*) + $2 FROM pg_background_result($1) AS (x int)' INTO got USING p2, got;
        IF got <> 2 THEN
            RAISE EXCEPTION 'pg_background_result returned % rows of 2', got;
        END IF;
    END LOOP;
    PERFORM put('pool_pg_background_tasks', k / 2 * 2),
            put('pool_pg_background_tps', k / 2 * 2 / (ms(t0, clock_timestamp()) / 1000));
END $$;

-- This backend's mappings of dynamic shared memory segments (the files
-- /dev/shm/PostgreSQL.*): their size, and how much of them it has touched
-- (Rss), in kB, from its smaps.
CREATE FUNCTION dsm_self(OUT mapped_kb float8, OUT rss_kb float8)
LANGUAGE sql AS $$
    WITH l AS (SELECT line, n
               FROM regexp_split_to_table(pg_read_file(format('/proc/%s/smaps', pg_backend_pid())),
                                          E'\n') WITH ORDINALITY AS s(line, n)),
         -- each line numbered by the mapping whose header it follows
         g AS (SELECT line, sum((line ~ '^[0-9a-f]+-[0-9a-f]+ ')::int) OVER (ORDER BY n) AS map
               FROM l),
         shm AS (SELECT map FROM g WHERE line ~ '^[0-9a-f]+-[0-9a-f]+ .* /dev/shm/PostgreSQL\.[0-9]+$')
    SELECT sum((regexp_match(line, '^Size:\s+(\d+) kB'))[1]::float8),
           sum((regexp_match(line, '^Rss:\s+(\d+) kB'))[1]::float8)
    FROM g JOIN shm USING (map)
$$;

-- Shared memory per queued task: the pool's one worker is held in a
-- task waiting for an advisory lock that this session holds, then k
-- SELECT 1 tasks are queued behind it.  The tasks live in a DSA area of
-- dynamic shared memory segments; this backend, having queued the first
-- task, has the area mapped, maps every segment it adds, and touches
-- the pages it writes.  Then the pool is dropped with its tasks.
CREATE FUNCTION bench_pool_memory(pool text, k int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lock_key constant bigint := 4242;
    blocker bigint;
    b record;
    a record;
    queued int;
BEGIN
    PERFORM pg_advisory_lock(lock_key);
    blocker := dynbgw_submit(pool, format('SELECT pg_advisory_xact_lock(%s)', lock_key));
    PERFORM wait_for(format('EXISTS (SELECT FROM pg_locks
                                     WHERE locktype = ''advisory'' AND NOT granted
                                       AND pid = (SELECT pid FROM dynbgw_tasks WHERE id = %s))',
                            blocker));
    SELECT * INTO b FROM dsm_self();
    FOR i IN 1 .. k LOOP
        PERFORM dynbgw_submit(pool, 'SELECT 1');
    END LOOP;
    SELECT * INTO a FROM dsm_self();
    queued := (SELECT p.queued FROM dynbgw_pools p WHERE p.name = pool);
    IF queued <> k THEN
        RAISE EXCEPTION 'pool % queues % tasks, not %', pool, queued, k;
    END IF;
    PERFORM put('pool_queued', k),
            put('pool_task_bytes', (a.rss_kb - b.rss_kb) * 1024 / k),
            put('pool_dsm_before_kb', b.mapped_kb),
            put('pool_dsm_after_kb', a.mapped_kb);
    IF NOT dynbgw_pool_drop(pool) THEN
        RAISE EXCEPTION 'dynbgw_pool_drop(%) failed', pool;
    END IF;
    PERFORM pg_advisory_unlock(lock_key);
END $$;

-- ---- the report ----

-- About three significant digits.
CREATE FUNCTION f(x float8) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN x IS NULL THEN NULL
                WHEN abs(x) >= 100 THEN round(x::numeric)::text
                WHEN abs(x) >= 10 THEN round(x::numeric, 1)::text
                WHEN abs(x) >= 1 THEN round(x::numeric, 2)::text
                WHEN abs(x) >= 0.01 OR x = 0 THEN round(x::numeric, 3)::text
                -- a ratio of µs to seconds: not 0.000
                ELSE round(x::numeric, 2 - floor(log(abs(x::numeric)))::int)::text END
$$;

-- One table row.  No target: for information only.
CREATE FUNCTION md(label text, d text, b text, ratio float8, target text, met boolean)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('| %s | %s | %s | %s | %s | %s |', label,
                  coalesce(d, '—'), coalesce(b, '—'),
                  coalesce(f(ratio) || '×', '—'), coalesce(target, '—'),
                  CASE WHEN target IS NULL THEN '—'
                       WHEN met IS NULL THEN 'n/a'
                       WHEN met THEN 'yes'
                       ELSE '**NO**' END)
$$;

CREATE FUNCTION report() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    l50 float8 := pct('launch', 0.5);
    l95 float8 := pct('launch', 0.95);
    fl50 float8 := pct('fork_floor', 0.5);
    fl95 float8 := pct('fork_floor', 0.95);
    -- pgbench ran in chunks between the launch rounds: pool their means
    conn float8 := m('conn_total_ms') / m('conn_n');
    t50 float8 := pct('terminate', 0.5);
    t95 float8 := pct('terminate', 0.95);
    rps float8 := m('worker_rps');
    w text := 'prec_dynbgw_';
    b text := 'prec_pg_sleep_';
    per float8;
    per10 float8;
    q50 float8 := pct('queue_wake', 0.5);
    q99 float8 := pct('queue_wake', 0.99);
    qn text := m('queue_wake_rows');
    -- CPU per handled row of the worker, per row queued of the queuing session
    qw float8 := m('queue_wake_worker_ms') / nullif(m('queue_wake_handled'), 0);
    qw10 float8 := m('queue_poll_10ms_worker_ms') / nullif(m('queue_poll_10ms_handled'), 0);
    qw1 float8 := m('queue_poll_1s_worker_ms') / nullif(m('queue_poll_1s_handled'), 0);
    qo float8 := m('queue_cost_wake_ms') / m('queue_cost_rows');
    qo_quiet float8 := m('queue_cost_quiet_ms') / m('queue_cost_rows');
    r float8;
    t text;
    n int;
BEGIN
    RETURN NEXT '| measurement | dynbgw | baseline | ratio | target | met? |';
    RETURN NEXT '|---|---|---|---|---|---|';

    -- 1. launch latency
    RETURN NEXT md(format('launch idle worker, p50 ms (n=%s) vs new backend connection (pgbench -C, mean of %s)',
                          cnt('launch'), m('conn_n')),
                   f(l50), f(conn), l50 / conn, '≤ 1.1×', l50 / conn <= 1.1);
    RETURN NEXT md('launch idle worker, p95 ms vs new backend connection (mean)',
                   f(l95), f(conn), l95 / conn, NULL, NULL);
    RETURN NEXT md(format('launch idle worker, p50 ms vs fork floor (bare entry point, no database; n=%s)', cnt('fork_floor')),
                   f(l50), f(fl50), l50 / fl50, NULL, NULL);
    RETURN NEXT md('launch idle worker, p95 ms vs fork floor p95',
                   f(l95), f(fl95), l95 / fl95, NULL, NULL);
    RETURN NEXT md('launch idle worker, p50 ms vs pg_background_launch',
                   f(l50),
                   CASE WHEN m('pg_background') > 0
                        THEN 'installed, not measured'
                        ELSE 'not installed' END,
                   NULL, '≤ 0.9×', NULL);

    -- 2. stop latency
    RETURN NEXT md(format('stop idle worker, p50 ms (n=%s) vs pg_terminate_backend(pid, 10000) of a backend in pg_sleep (n=%s)',
                          cnt('stop_idle'), cnt('terminate')),
                   f(pct('stop_idle', 0.5)), f(t50), pct('stop_idle', 0.5) / t50,
                   '≤ 0.5×', pct('stop_idle', 0.5) / t50 <= 0.5);
    RETURN NEXT md('stop idle worker, p95 ms vs pg_terminate_backend p95',
                   f(pct('stop_idle', 0.95)), f(t95), pct('stop_idle', 0.95) / t95, NULL, NULL);
    RETURN NEXT md(format('stop worker inside pg_sleep(3600), p50 ms (n=%s) vs pg_terminate_backend p50', cnt('stop_running')),
                   f(pct('stop_running', 0.5)), f(t50), pct('stop_running', 0.5) / t50,
                   '≤ 0.5×', pct('stop_running', 0.5) / t50 <= 0.5);
    RETURN NEXT md('stop worker inside pg_sleep(3600), p95 ms vs pg_terminate_backend p95',
                   f(pct('stop_running', 0.95)), f(t95), pct('stop_running', 0.95) / t95, NULL, NULL);

    -- 3. job throughput
    RETURN NEXT md('job throughput, runs/s of SELECT 1 with naptime 0 vs pgbench -c1 tps (one open connection)',
                   f(rps), f(m('pgbench_tps')), rps / m('pgbench_tps'),
                   '≥ 3×', rps / m('pgbench_tps') >= 3);
    RETURN NEXT md('job throughput, runs/s vs in-server floor (procedure: EXECUTE ''SELECT 1''; COMMIT)',
                   f(rps), f(m('floor_rps')), rps / m('floor_rps'),
                   '≥ 0.5×', rps / m('floor_rps') >= 0.5);
    RETURN NEXT md('job throughput, runs/s vs psql -c ''SELECT 1'' loop (new connection each run)',
                   f(rps), f(m('psql_rps')), rps / m('psql_rps'),
                   '≥ 100×', rps / m('psql_rps') >= 100);
    r := (m('worker_rps_history') + m('worker_rps_history_again')) / 2;
    RETURN NEXT md(format('job throughput, runs/s with dynbgw.history_size = 1000 (mean of %s and %s) vs history off (0)',
                          f(m('worker_rps_history')), f(m('worker_rps_history_again'))),
                   f(r), f(m('worker_rps_no_history')), r / m('worker_rps_no_history'),
                   '≥ 0.95×', r / m('worker_rps_no_history') >= 0.95);

    -- 3b. outcomes
    RETURN NEXT md(format('dynbgw_wait wake-up, end of the worker to the wait returning, p50 ms (n=%s)',
                          cnt('wait_wakeup')),
                   f(pct('wait_wakeup', 0.5)), NULL, NULL,
                   '≤ 1 ms', pct('wait_wakeup', 0.5) <= 1);
    RETURN NEXT md('dynbgw_wait wake-up, p95 ms', f(pct('wait_wakeup', 0.95)), NULL, NULL, NULL, NULL);

    -- 3c. results as rows
    r := pct('result_dynbgw', 0.5) / pct('result_pg_background', 0.5);
    RETURN NEXT md(format('results: from the call to 1,000 rows in the session, p50 ms (n=%s): dynbgw_launch, dynbgw_wait, dynbgw_result vs pg_background_result(pg_background_launch())',
                          cnt('result_dynbgw')),
                   f(pct('result_dynbgw', 0.5)),
                   coalesce(f(pct('result_pg_background', 0.5)), 'not installed'),
                   r, NULL, NULL);
    RETURN NEXT md('results: the same, p95 ms',
                   f(pct('result_dynbgw', 0.95)), f(pct('result_pg_background', 0.95)),
                   pct('result_dynbgw', 0.95) / pct('result_pg_background', 0.95), NULL, NULL);
    RETURN NEXT md('results: reading the kept 1,000 rows again, p50 ms: dynbgw_result vs dynbgw_result_json',
                   f(pct('result_read', 0.5)), f(pct('result_read_json', 0.5)),
                   pct('result_read', 0.5) / pct('result_read_json', 0.5), NULL, NULL);
    RETURN NEXT md('results: shared memory per kept row (an integer and a 32-byte text), bytes, vs the row as COPY text',
                   f(m('result_bytes_per_row')), f(m('result_text_bytes_per_row')),
                   m('result_bytes_per_row') / m('result_text_bytes_per_row'), NULL, NULL);

    -- 4. schedule precision; the baseline is for comparison, targets are absolute
    RETURN NEXT md(format('schedule error abs(t_k − (t_0 + k·100 ms)), p50 ms (n=%s runs) vs a session sleeping with pg_sleep to each start',
                          m(w || 'n')),
                   f(m(w || 'p50')), f(m(b || 'p50')), NULL, NULL, NULL);
    RETURN NEXT md('schedule error, p99 ms', f(m(w || 'p99')), f(m(b || 'p99')), NULL,
                   '≤ 1 ms', m(w || 'p99') <= 1);
    RETURN NEXT md('schedule error, max ms', f(m(w || 'max')), f(m(b || 'max')), NULL, NULL, NULL);
    RETURN NEXT md(format('schedule drift, error of last run − first, ms (least-squares fit over all runs: %s vs %s)',
                          f(m(w || 'fit_drift')), f(m(b || 'fit_drift'))),
                   f(m(w || 'drift')), f(m(b || 'drift')), NULL,
                   'abs(drift) ≤ 1 ms', abs(m(w || 'drift')) <= 1);
    RETURN NEXT md('schedule jitter around the grid the runs follow (error − median error), p99 ms',
                   f(m(w || 'dev_p99')), f(m(b || 'dev_p99')), NULL, NULL, NULL);
    RETURN NEXT md('schedule: ms spent waiting for a CPU during the runs (schedstat), and (ms late beyond the median error, summed)',
                   format('%s (%s late)', f(m(w || 'cpu_wait')), f(m(w || 'late_sum'))),
                   format('%s (%s late)', f(m(b || 'cpu_wait')), f(m(b || 'late_sum'))),
                   NULL, NULL, NULL);

    RETURN NEXT md(format('cron schedule every second: run start (statement_timestamp) after its second, p50 ms (n=%s runs) vs a session sleeping with pg_sleep to each start',
                          cnt('cron_dynbgw')),
                   f(pct('cron_dynbgw', 0.5)), f(pct('cron_pg_sleep', 0.5)), NULL, NULL, NULL);
    RETURN NEXT md('cron schedule every second: start after its second, p99 ms',
                   f(pct('cron_dynbgw', 0.99)), f(pct('cron_pg_sleep', 0.99)), NULL,
                   '≤ 1 ms', pct('cron_dynbgw', 0.99) <= 1);
    RETURN NEXT md('cron schedule every second: start after its second, max ms',
                   f(pct('cron_dynbgw', 1)), f(pct('cron_pg_sleep', 1)), NULL, NULL, NULL);

    -- 4b. CPU per run, the cluster's over a window divided by the runs in it
    RETURN NEXT md(format('every-second cron `INSERT` job: CPU per run of the worker process, ms (%s runs in %s s) vs the backend of a session sleeping with pg_sleep to each second and inserting (%s runs)',
                          m('cpu_dynbgw_runs'), m('cpu_secs'), m('cpu_pg_sleep_runs')),
                   f(m('cpu_dynbgw_own_ms') / m('cpu_dynbgw_runs')),
                   f(m('cpu_pg_sleep_own_ms') / m('cpu_pg_sleep_runs')),
                   (m('cpu_dynbgw_own_ms') / m('cpu_dynbgw_runs'))
                   / (m('cpu_pg_sleep_own_ms') / m('cpu_pg_sleep_runs')),
                   '≤ 0.3 ms', m('cpu_dynbgw_own_ms') / m('cpu_dynbgw_runs') <= 0.3);
    RETURN NEXT md(format('the same, CPU per run of the whole cluster (the idle cluster takes %s ms in as long), ms',
                          f(m('cpu_idle_ms'))),
                   f(m('cpu_dynbgw_ms') / m('cpu_dynbgw_runs')),
                   f(m('cpu_pg_sleep_ms') / m('cpu_pg_sleep_runs')),
                   (m('cpu_dynbgw_ms') / m('cpu_dynbgw_runs'))
                   / (m('cpu_pg_sleep_ms') / m('cpu_pg_sleep_runs')),
                   '≤ 0.3 ms', m('cpu_dynbgw_ms') / m('cpu_dynbgw_runs') <= 0.3);
    RETURN NEXT md(format('idle worker at `naptime => ''1 ms''`: CPU of the whole cluster, %% of a core (%s wake-ups in %s s), and ms per wake-up',
                          m('cpu_nap1_runs'), m('cpu_secs')),
                   format('%s %% (%s ms)', f(m('cpu_nap1_ms') / (10 * m('cpu_secs'))),
                          f(m('cpu_nap1_ms') / m('cpu_nap1_runs'))),
                   NULL, NULL, NULL, NULL);

    -- 4c. queue: from a row's commit to the worker's run that saw it
    RETURN NEXT md(format('queue: commit of a row whose trigger calls dynbgw_wake → the woken worker''s run has seen it, p50 ms (n=%s) vs a worker polling the queue every 10 ms (n=%s)',
                          cnt('queue_wake'), cnt('queue_poll_10ms')),
                   f(q50), f(pct('queue_poll_10ms', 0.5)), q50 / pct('queue_poll_10ms', 0.5),
                   '≤ 0.5 ms', q50 <= 0.5);
    RETURN NEXT md(format('queue: the same, p99 ms (max %s vs %s) vs polling every 10 ms p99',
                          f(pct('queue_wake', 1)), f(pct('queue_poll_10ms', 1))),
                   f(q99), f(pct('queue_poll_10ms', 0.99)), q99 / pct('queue_poll_10ms', 0.99),
                   NULL, NULL);
    RETURN NEXT md(format('queue: woken, of which from the commit to the start of the run that saw the row (dynbgw_runs.started), p50 / p99 ms (n=%s; the worker waited %s ms in all for a CPU, schedstat)',
                          cnt('queue_wake_start'), f(m('queue_wake_worker_cpu_wait_ms'))),
                   nullif(format('%s / %s', f(pct('queue_wake_start', 0.5)), f(pct('queue_wake_start', 0.99))), ' / '),
                   NULL, NULL, NULL, NULL);
    RETURN NEXT md(format('queue: woken, p50 ms vs a worker polling every 1 s (n=%s)', cnt('queue_poll_1s')),
                   f(q50), f(pct('queue_poll_1s', 0.5)), q50 / pct('queue_poll_1s', 0.5), NULL, NULL);
    RETURN NEXT md(format('queue: woken, p99 ms vs polling every 1 s p99 (max %s)', f(pct('queue_poll_1s', 1))),
                   f(q99), f(pct('queue_poll_1s', 0.99)), q99 / pct('queue_poll_1s', 0.99), NULL, NULL);
    RETURN NEXT md(format('queue: rows the woken worker handled within 10 s of the last commit, of %s committed 2 to 20 ms apart (polling every 10 ms: %s, every 1 s: %s); and of %s committed back to back with the trigger (the CPU row below), how many it left',
                          qn, m('queue_poll_10ms_handled'), m('queue_poll_1s_handled'),
                          m('queue_cost_woken')),
                   m('queue_wake_handled') || '; ' || m('queue_cost_left') || ' left', NULL, NULL,
                   'all ' || qn || '; 0 left',
                   m('queue_wake_handled') = m('queue_wake_rows') AND m('queue_cost_left') = 0);
    RETURN NEXT md(format('queue: CPU of the worker process per handled row, ms, woken (%s) vs polling every 10 ms (%s)',
                          queue_runs('wake'), queue_runs('poll_10ms')),
                   f(qw), f(qw10), qw / qw10, NULL, NULL);
    RETURN NEXT md(format('queue: CPU of the worker per handled row, ms, woken vs polling every 1 s (%s)',
                          queue_runs('poll_1s')),
                   f(qw), f(qw1), qw / qw1, NULL, NULL);
    RETURN NEXT md(format('queue: CPU of the queuing session per row, ms, INSERT; COMMIT back to back (%s rows each way, in alternate blocks) into the queue with the waking trigger vs a twin table without',
                          m('queue_cost_rows')),
                   f(qo), f(qo_quiet), qo / qo_quiet, NULL, NULL);

    -- 5. scale: growth is judged per worker, against 10 workers
    FOREACH t IN ARRAY ARRAY['launch', 'stop'] LOOP
        per10 := pct('scale_' || t || '_10', 0.5) / 10;
        FOREACH n IN ARRAY ARRAY[10, 50, 100] LOOP
            per := pct(format('scale_%s_%s', t, n), 0.5) / n;
            RETURN NEXT md(format('%s %s idle workers one by one, total ms (ms/worker), median of %s, vs ms/worker at 10',
                                  CASE t WHEN 'launch' THEN 'launch' ELSE 'stop all' END,
                                  n, cnt(format('scale_%s_%s', t, n))),
                           format('%s (%s)', f(per * n), f(per)),
                           CASE WHEN n > 10 THEN f(per10) END,
                           CASE WHEN n > 10 THEN per / per10 END,
                           CASE WHEN n > 10 THEN '≤ 1.5× (linear)' END,
                           per / per10 <= 1.5);
        END LOOP;
    END LOOP;
    FOREACH n IN ARRAY ARRAY[10, 50, 100] LOOP
        r := pct('view_' || n, 0.5);
        RETURN NEXT md(format('SELECT * FROM dynbgw_workers with %s up, ms (µs/worker), median of %s', n, cnt('view_' || n)),
                       format('%s (%s)', f(r), f(r * 1000 / n)), NULL, NULL, NULL, NULL);
    END LOOP;
    FOREACH n IN ARRAY ARRAY[10, 50, 100] LOOP
        r := m('pss_worker_kb_' || n) / m('pss_backend_kb_' || n);
        RETURN NEXT md(format('PSS per idle worker, kB, with %s up vs idle backend connection at that time', n),
                       f(m('pss_worker_kb_' || n)), f(m('pss_backend_kb_' || n)), r,
                       '≤ 1.2×', r <= 1.2);
    END LOOP;

    -- 6. pools
    RETURN NEXT md(format('pool: submit → task start on an idle pool of 2 workers, started − submitted of the task, p50 ms (n=%s, one task at a time, each waited for)',
                          cnt('pool_start')),
                   f(pct('pool_start', 0.5)), NULL, NULL,
                   '≤ 0.1 ms', pct('pool_start', 0.5) <= 0.1);
    RETURN NEXT md(format('pool: submit → task start, p90 ms (p99 %s)', f(pct('pool_start', 0.99))),
                   f(pct('pool_start', 0.9)), NULL, NULL, NULL, NULL);
    r := pct('pool_call', 0.5) / pct('pool_call_pg_background', 0.5);
    RETURN NEXT md(format('pool: call → one-statement command done, `SELECT (dynbgw_wait_task(dynbgw_submit(''bench'', ''SELECT 1''))).outcome`, p50 ms (n=%s) vs `SELECT * FROM pg_background_result(pg_background_launch(''SELECT 1'')) AS (x int)` (n=%s)',
                          cnt('pool_call'), cnt('pool_call_pg_background')),
                   f(pct('pool_call', 0.5)),
                   coalesce(f(pct('pool_call_pg_background', 0.5)), 'not installed'),
                   r, '≤ 0.5×', r <= 0.5);
    RETURN NEXT md('pool: call → command done, p90 ms vs pg_background p90',
                   f(pct('pool_call', 0.9)), f(pct('pool_call_pg_background', 0.9)),
                   pct('pool_call', 0.9) / pct('pool_call_pg_background', 0.9), NULL, NULL);
    r := m('pool_tps') / m('pool_pg_background_tps');
    RETURN NEXT md(format('pool: %s `SELECT 1` tasks through a pool of 2, tasks/s from the first submit to the end of the last task (submitting all took %s ms; of the last %s ended, %s did not succeed) vs pg_background, a worker per task, two at a time (%s tasks)',
                          m('pool_tasks'), f(m('pool_submit_ms')), m('pool_checked'),
                          m('pool_not_succeeded'), m('pool_pg_background_tasks')),
                   f(m('pool_tps')),
                   coalesce(f(m('pool_pg_background_tps')), 'not installed'),
                   r, NULL, NULL);
    r := m('pool_tps') / m('pool_pgbench_tps');
    RETURN NEXT md(format('pool: the same tasks/s vs 2 connections running `SELECT 1` one after the other, as 2 psql sessions would (pgbench -c 2 -j 2 -t %s, tps without connection time)',
                          m('pool_pgbench_per_client')),
                   f(m('pool_tps')), f(m('pool_pgbench_tps')), r, NULL, NULL);
    RETURN NEXT md(format('pool: shared memory per queued task, bytes: pages of the tasks'' DSA that queuing %s `SELECT 1` tasks behind a blocked worker wrote (Rss of the queuing backend''s mappings); the segments in /dev/shm it maps went from %s kB to %s kB',
                          m('pool_queued'), m('pool_dsm_before_kb'), m('pool_dsm_after_kb')),
                   f(m('pool_task_bytes')), NULL, NULL, NULL, NULL);
    r := m('pss_pool_worker_kb') / m('pss_pool_backend_kb');
    RETURN NEXT md('pool: PSS per idle pool worker, kB (2 up, after the submit → start and call → done rounds) vs idle backend connection at that time',
                   f(m('pss_pool_worker_kb')), f(m('pss_pool_backend_kb')), r, NULL, NULL);
END $$;

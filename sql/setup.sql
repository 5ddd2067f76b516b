--
-- setup: what the other tests share
--
-- wait_until(condition) polls every 10 ms until the boolean SQL expression
-- is true, and fails if it is not true within 30 seconds.  Tests wait for
-- workers with it instead of sleeping a fixed time.
--
CREATE FUNCTION wait_until(condition text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '30 seconds';
    ok boolean;
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        EXECUTE 'SELECT (' || condition || ')' INTO ok;
        IF ok THEN
            RETURN true;
        END IF;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'not true within 30 seconds: %', condition;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;

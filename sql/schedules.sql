--
-- Cron schedules: the parser and the next times, with dynbgw_next_runs(),
-- and workers launched with a schedule.  Times are shown in UTC.
--
SET TimeZone = 'UTC';

-- Five fields: minute hour day-of-month month day-of-week.
SELECT dynbgw_next_runs('*/15 * * * *', 'UTC', '2026-01-01 00:07:00+00', 3);
-- Six fields: seconds first.
SELECT dynbgw_next_runs('*/20 * * * * *', 'UTC', '2026-01-01 00:00:00+00', 4);
-- Lists, ranges, steps, names in any case; a weekday range.
SELECT dynbgw_next_runs('0 9-17/4 * * MON-fri', 'UTC', '2026-01-02 10:00:00+00', 5);
SELECT dynbgw_next_runs('0 0 1 jan,JUL *', 'UTC', '2026-01-01 00:00:00+00', 3);
SELECT dynbgw_next_runs('5/15 * * * *', 'UTC', '2026-01-01 00:00:00+00', 5);
SELECT dynbgw_next_runs('1,2,5-6 * * * *', 'UTC', '2026-01-01 00:00:00+00', 5);
-- Weekday 7 is Sunday, as 0 is.
SELECT dynbgw_next_runs('0 12 * * 7', 'UTC', '2026-01-01 00:00:00+00', 2);
-- Both day fields restricted: either matches (the 13th, and Fridays);
-- one restricted: only it counts.
SELECT dynbgw_next_runs('0 0 13 * fri', 'UTC', '2026-02-01 00:00:00+00', 5);
SELECT dynbgw_next_runs('0 0 13 * *', 'UTC', '2026-02-01 00:00:00+00', 2);
SELECT dynbgw_next_runs('0 0 * * fri', 'UTC', '2026-02-01 00:00:00+00', 2);
-- 29 February, in leap years only.
SELECT dynbgw_next_runs('0 0 29 2 *', 'UTC', '2026-01-01 00:00:00+00', 2);
-- The @ forms.
SELECT s, dynbgw_next_runs(s, 'UTC', '2026-05-13 10:20:30+00', 1)
FROM unnest(ARRAY['@yearly', '@annually', '@monthly', '@weekly', '@daily',
                  '@midnight', '@hourly']) AS s;
-- "from" is exclusive, and the default time zone is the session's.
SELECT dynbgw_next_runs('0 * * * *', NULL, '2026-01-01 00:00:00+00', 2);
SET TimeZone = 'Asia/Kolkata';
SELECT dynbgw_next_runs('0 0 * * *', NULL, '2026-01-01 00:00:00+00', 1) AT TIME ZONE 'UTC' AS utc;
SET TimeZone = 'UTC';

--
-- Daylight saving time, with the real transitions of 2026.
--
-- New York springs forward on 8 March at 02:00 EST to 03:00 EDT: 02:30
-- does not exist that day and runs at the first instant after the gap.
SELECT t, t AT TIME ZONE 'America/New_York' AS local
FROM dynbgw_next_runs('30 2 * * *', 'America/New_York', '2026-03-06 12:00:00+00', 4) AS t;
-- It falls back on 1 November at 02:00 EDT to 01:00 EST: 01:30 happens
-- twice and runs once, at its first occurrence.
SELECT t, t AT TIME ZONE 'America/New_York' AS local
FROM dynbgw_next_runs('30 1 * * *', 'America/New_York', '2026-10-30 12:00:00+00', 4) AS t;
-- Every 30 minutes across the repeated hour: a frequent schedule (its
-- seconds, minute or hour field begins with *) runs in both passes.
SELECT t, t AT TIME ZONE 'America/New_York' AS local
FROM dynbgw_next_runs('*/30 * * * *', 'America/New_York', '2026-11-01 03:50:00+00', 8) AS t;
-- Every minute across the gap: 02:00 to 02:59 collapse into one run at 03:00.
SELECT t, t AT TIME ZONE 'America/New_York' AS local
FROM dynbgw_next_runs('* * * * *', 'America/New_York', '2026-03-08 06:58:00+00', 4) AS t;
-- Berlin springs forward on 29 March at 02:00 CET, falls back on 25
-- October at 03:00 CEST.
SELECT t, t AT TIME ZONE 'Europe/Berlin' AS local
FROM dynbgw_next_runs('30 2 * * *', 'Europe/Berlin', '2026-03-28 00:00:00+00', 3) AS t;
SELECT t, t AT TIME ZONE 'Europe/Berlin' AS local
FROM dynbgw_next_runs('30 2 * * *', 'Europe/Berlin', '2026-10-24 00:00:00+00', 3) AS t;
-- From the last second before the gap, 02:30 still runs at the jump.
SELECT t, t AT TIME ZONE 'America/New_York' AS local
FROM dynbgw_next_runs('30 2 * * *', 'America/New_York', '2026-03-08 06:59:59+00', 1) AS t;
-- In a sequence too: 02:59:59 does not exist in Berlin that night.
SELECT t, t AT TIME ZONE 'Europe/Berlin' AS local
FROM dynbgw_next_runs('59 59 * * * *', 'Europe/Berlin', '2026-03-29 00:00:00+00', 3) AS t;
-- Frequent schedules have no pause when the clocks go back.
SELECT count(*) AS runs, max(gap) AS longest_gap
FROM (SELECT t - lag(t) OVER (ORDER BY t) AS gap
      FROM dynbgw_next_runs('*/10 * * * * *', 'America/New_York', '2026-11-01 05:00:00+00', 1080) AS t) AS g;
SELECT count(*) AS runs, max(gap) AS longest_gap
FROM (SELECT t - lag(t) OVER (ORDER BY t) AS gap
      FROM dynbgw_next_runs('* * * * *', 'Europe/Berlin', '2026-10-25 00:00:00+00', 150) AS t) AS g;
-- From the end of the first pass, the next run is early in the second.
SELECT t, t AT TIME ZONE 'America/New_York' AS local
FROM dynbgw_next_runs('*/10 * * * * *', 'America/New_York', '2026-11-01 05:59:50+00', 2) AS t;
SELECT t, t AT TIME ZONE 'America/New_York' AS local
FROM dynbgw_next_runs('15 * * * *', 'America/New_York', '2026-11-01 05:20:00+00', 3) AS t;
-- Lord Howe Island moves its clocks by half an hour, at 02:00 local time.
SELECT t, t AT TIME ZONE 'Australia/Lord_Howe' AS local
FROM dynbgw_next_runs('*/20 1-2 * * *', 'Australia/Lord_Howe', '2026-04-04 14:10:00+00', 7) AS t;
-- Offsets must be less than 16 hours, as in a timestamptz (22009).
SELECT dynbgw_next_runs('30 2 * * *', '<+25>-25', '2026-01-01 00:00:00+00', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('30 2 * * *', 'A+15B+16,M3.2.0,M11.1.0', '2026-01-01 00:00:00+00', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('30 2 * * *', 'A+14B+15,M3.2.0,M11.1.0', '2026-01-01 00:00:00+00', 1);
-- ... also the session's zone, when the time zone is NULL.
SET TimeZone = 'A+15B+16,J339/12,J340/12';
SELECT dynbgw_next_runs('30 2 * * *', NULL, '2026-01-01 00:00:00+00', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(1, 'SELECT 1', schedule => '48 10 4,5 12 *');
\echo :LAST_ERROR_SQLSTATE
SET TimeZone = 'UTC';
-- Clocks that change twice within a day or so: daylight saving time for
-- a day (from 02:00 on 10 April to 02:00 the next day), then for six hours.
SELECT t, t AT TIME ZONE 'XXX0YYY,J100,J101' AS local
FROM dynbgw_next_runs('0 * * * *', 'XXX0YYY,J100,J101', '2026-04-10 00:00:00+00', 6) AS t;
SELECT dynbgw_next_runs('30 0 * * *', 'XXX0YYY,J100/0,J100/6', '2026-04-09 23:00:00+00', 1) AS in_the_jump,
       dynbgw_next_runs('30 5 * * *', 'XXX0YYY,J100/0,J100/6', '2026-04-09 23:00:00+00', 1) AS first_of_two;
-- Clocks that go back by 30 hours: day 6 shows again.
SELECT t, t AT TIME ZONE 'A-15B+15,M3.2.0,M11.1.0' AS local
FROM dynbgw_next_runs('* * 6 * *', 'A-15B+15,M3.2.0,M11.1.0', '2026-03-06 08:58:00+00', 3) AS t;
-- The list ends with the range of timestamptz, also where the local time
-- is past it.
SELECT t FROM dynbgw_next_runs('0 * * * *', 'America/Los_Angeles', '294276-12-31 20:00:00+00', 10) AS t;
SELECT count(*), min(t), max(t)
FROM dynbgw_next_runs('0 * * * *', 'Pacific/Kiritimati', '294276-12-31 08:00:00+00', 20) AS t;
-- A search that runs past the end of the range ends (it used to loop for
-- ever, deaf to cancels): no Sunday 29 February is left, and only 9498
-- from 2026 on.
SELECT count(*) FROM dynbgw_next_runs('0 0 29 2 */7', 'UTC', '294253-01-01 00:00:00+00', 1);
SELECT count(*) FROM dynbgw_next_runs('0 0 29 2 */7', 'America/New_York', '2026-01-01 00:00:00+00', 10000);
-- The range begins at midnight UTC: the runs of a zone west of it begin
-- there too, on the local day before.
SELECT t FROM dynbgw_next_runs('0 * * * *', '<-15>15', '4714-11-24 00:00:00+00 BC', 2) AS t;
-- A POSIX rule's table of changes ends in 2770; the rule goes on.
SELECT t, t AT TIME ZONE 'A0B,J365/23,J1/1' AS local
FROM dynbgw_next_runs('0 5 * * *', 'A0B,J365/23,J1/1', '2770-01-01 00:30:00+00', 1) AS t;

--
-- Bad expressions (22023): the message says which field, and where.
--
SELECT dynbgw_next_runs('* * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('* * * * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('60 * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('0 0 * * mon-');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('*/0 * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('5-1 * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('0 0 1 foo *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('0 0 32 * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('0 0 1,,2 * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('@often');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('* * * * *', 'Mars/Olympus_Mons');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('* * * * *', count => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('@daily 5 4 3 2 1');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_next_runs('* * * * *', 'UTC', 'infinity');
\echo :LAST_ERROR_SQLSTATE
-- Before 2000 as after, and across its first instant.
SELECT dynbgw_next_runs('* * * * * *', 'UTC', '1999-12-31 23:59:58.5+00', 2);
-- 29 February on a Sunday: every 28 years, searched up to 400 ahead.
SELECT dynbgw_next_runs('0 0 29 2 */7', 'UTC', '2033-01-01 00:00:00+00', 2);
-- A schedule that is never due has no next times.
SELECT count(*) FROM dynbgw_next_runs('0 0 30 2 *', 'UTC', now(), 5);

--
-- Workers on a schedule.
--
-- Every second: it runs, and the view shows the schedule, its time zone
-- and when the next run is due; naptime does not apply.
SELECT dynbgw_launch(1, 'SELECT 1', schedule => '* * * * * *',
                     timezone => 'Europe/Berlin') > 0 AS launched;
SELECT wait_until('(SELECT runs FROM dynbgw_workers WHERE n = 1) >= 2');
SELECT schedule, timezone, naptime,
       next_run - date_trunc('second', next_run) = '0' AS on_a_second
FROM dynbgw_workers WHERE n = 1;
SELECT dynbgw_stop(n => 1) AS stopped;
-- The time zone defaults to the session's.
SET TimeZone = 'America/New_York';
SELECT dynbgw_launch(1, 'SELECT 1', schedule => '@daily') > 0 AS launched;
SELECT schedule, timezone,
       next_run AT TIME ZONE 'America/New_York' = date_trunc('day', now() AT TIME ZONE 'America/New_York') + '1 day' AS next_midnight
FROM dynbgw_workers WHERE n = 1;
SELECT dynbgw_stop(n => 1) AS stopped;
RESET TimeZone;
-- Errors: naptime and schedule together, a time zone without a schedule,
-- an unknown time zone, a bad expression, one that is never due (22023).
SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 s', schedule => '* * * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(1, 'SELECT 1', timezone => 'UTC');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(1, 'SELECT 1', schedule => '* * * * *', timezone => 'Nowhere');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(1, 'SELECT 1', schedule => '* * * * *', timezone => '<-16>16');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(1, 'SELECT 1', schedule => '* * * *');
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(1, 'SELECT 1', schedule => '0 0 31 4 *');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM dynbgw_workers;

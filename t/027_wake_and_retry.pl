
# Copyright (c) dynbgw authors
# slow: about 36 s

# Runs on demand and retries, where they take several sessions and time.
#
# - dynbgw_wake() inside a transaction takes effect at its commit and not
#   on rollback, nor when the subtransaction that called it rolls back;
#   the run it starts sees the rows the transaction committed.
# - The README's queue consumer runs as printed: a trigger wakes the
#   worker, which takes each row within moments, not at its hourly
#   schedule.
# - Wakes during a run coalesce into one run right after it.
# - A wake leaves the schedule alone: naptime and cron workers keep their
#   next scheduled run.
# - A stopping or restarting worker is not started by a wake.
# - Retries: a failed run runs again up to retry times, the delay doubling;
#   dynbgw_runs shows each attempt; dynbgw_wait() reports the outcome after
#   them; the next scheduled run cancels pending retries, and so does a
#   stop; run_timeout applies to each attempt; a wake brings a pending
#   retry forward.
# - A wake storm from several sessions leaves the worker consistent.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_node('main', max_worker_processes => 40);

# Poll until $cond holds; a failed test, not a hang, if it never does.
sub eventually
{
	my ($cond, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok($node->poll_query_until('postgres', "SELECT $cond"), $name);
}

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# Attempts of worker $n in dynbgw_runs: "trigger/attempt/status" each.
sub attempts
{
	my ($n) = @_;
	return q1(
		"SELECT string_agg(trigger || '/' || attempt || '/' || status, ' ' ORDER BY started)
		 FROM dynbgw_runs WHERE n = $n");
}

###########################################################################
# 1. At commit, not on rollback.
###########################################################################

q1(q{
	CREATE TABLE queue (id serial PRIMARY KEY, item text);
	CREATE TABLE seen (id int, item text);
	SELECT dynbgw_launch(1,
		'WITH d AS (DELETE FROM queue RETURNING id, item) INSERT INTO seen SELECT id, item FROM d',
		naptime => '1 hour')});
eventually('runs = 1 FROM dynbgw_workers WHERE n = 1',
	'worker 1 made its first run');

my $bg = $node->background_psql('postgres');
$bg->query_safe(
	"BEGIN; INSERT INTO queue (item) VALUES ('a'); SELECT dynbgw_wake(1)");
ok(stays($node, 'SELECT runs FROM dynbgw_workers WHERE n = 1', '1', 1),
	'a wake in an open transaction starts no run');
$bg->query_safe('COMMIT');
eventually(q{EXISTS (SELECT FROM seen WHERE item = 'a')},
	'at commit the worker runs and sees the row that woke it');
is(attempts(1), 'schedule/1/succeeded wake/1/succeeded',
	'dynbgw_runs shows the run as woken');

$bg->query_safe("BEGIN; INSERT INTO queue (item) VALUES ('b');
	SELECT dynbgw_wake(1); ROLLBACK");
$bg->query_safe('BEGIN; SAVEPOINT s; SELECT dynbgw_wake(1);
	ROLLBACK TO SAVEPOINT s; COMMIT');
ok(stays($node, 'SELECT runs FROM dynbgw_workers WHERE n = 1', '2', 1),
	'no run after a rollback, nor after a rolled back subtransaction');

$bg->query_safe("BEGIN; SAVEPOINT s; INSERT INTO queue (item) VALUES ('c');
	SELECT dynbgw_wake(1); RELEASE SAVEPOINT s; COMMIT");
eventually(q{EXISTS (SELECT FROM seen WHERE item = 'c')},
	'a released subtransaction wakes at commit');
$bg->query_safe("BEGIN; INSERT INTO queue (item) VALUES ('d');
	SELECT dynbgw_wake(1); SAVEPOINT s; SELECT dynbgw_wake(1);
	ROLLBACK TO SAVEPOINT s; COMMIT");
eventually(q{EXISTS (SELECT FROM seen WHERE item = 'd')},
	'a wake before the savepoint stands when the savepoint rolls back');
ok(stays($node, 'SELECT runs FROM dynbgw_workers WHERE n = 1', '4', 0.5),
	'a transaction that woke twice starts one run');
$bg->query_safe("BEGIN; SAVEPOINT a; INSERT INTO queue (item) VALUES ('e');
	SELECT dynbgw_wake(1); RELEASE SAVEPOINT a; SAVEPOINT b;
	ROLLBACK TO SAVEPOINT b; COMMIT");
eventually(q{EXISTS (SELECT FROM seen WHERE item = 'e')},
	'a released wake belongs to the parent: a later savepoint rolled back leaves it');

# A procedure's COMMIT is a commit too.
q1(q{CREATE PROCEDURE enqueue(k int) LANGUAGE plpgsql AS $$
	BEGIN
		FOR i IN 1..k LOOP
			INSERT INTO queue (item) VALUES ('p' || i);
			PERFORM dynbgw_wake(1);
			COMMIT;
		END LOOP;
	END $$});
q1('CALL enqueue(3)');
eventually(q{(SELECT count(*) FROM seen WHERE item LIKE 'p%') = 3},
	"a procedure's COMMIT wakes");
$bg->quit;
q1('SELECT dynbgw_stop(n => 1)');

###########################################################################
# 2. The README's queue consumer, as printed.
###########################################################################

my $consumer = readme_sql_block('-- An event-driven queue consumer');
ok(defined $consumer, 'README.md has the queue consumer');
$consumer //= "SELECT 'queue consumer not found in README.md';\n";
my ($rc, $out, $err) = $node->psql('postgres', $consumer,
	extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
is($rc, 0, 'the queue consumer runs') or diag($err);
for my $i (1 .. 5)
{
	q1("INSERT INTO jobs (payload) VALUES ('job $i')");
	eventually(
		"EXISTS (SELECT FROM jobs_done WHERE payload = 'job $i')",
		"README consumer: job $i is handled at once");
}
is( q1(q{SELECT count(*) FROM dynbgw_runs r JOIN dynbgw_workers w USING (n)
	WHERE w.command LIKE '%jobs%' AND r.trigger = 'wake'}) >= 5 ? 'yes' : 'no',
	'yes', 'README consumer: its runs were woken');
q1(q{SELECT dynbgw_stop(n => n) FROM dynbgw_workers WHERE command LIKE '%jobs%'});

###########################################################################
# 3. Wakes during a run coalesce into one run right after it.
###########################################################################

q1(q{SELECT dynbgw_launch(2, 'SELECT pg_sleep(2)', naptime => '1 hour')});
eventually(q{state = 'running' FROM dynbgw_workers WHERE n = 2},
	'worker 2 is in its first run');
is( q1(q{DO $$BEGIN FOR i IN 1 .. 20 LOOP PERFORM dynbgw_wake(2); COMMIT; END LOOP; END$$;
	SELECT state, runs FROM dynbgw_workers WHERE n = 2}),
	'running|0', '20 wakes, each committed, during the run');
eventually(q{runs = 2 AND state = 'idle' FROM dynbgw_workers WHERE n = 2},
	'worker 2 ran once more');
ok(stays($node, 'SELECT runs FROM dynbgw_workers WHERE n = 2', '2', 2.5),
	'20 wakes during a run make one run after it');
is(attempts(2), 'schedule/1/succeeded wake/1/succeeded',
	'the run after them was woken');
q1('SELECT dynbgw_stop(n => 2)');

###########################################################################
# 4. The schedule is unchanged.
###########################################################################

for my $case ([ 3, q{naptime => '4 s'} ],
	[ 4, q{schedule => '*/4 * * * * *'} ])
{
	my ($n, $timing) = @$case;
	q1("SELECT dynbgw_launch($n, 'SELECT 1', $timing)");
	eventually("runs >= 1 AND state = 'idle' FROM dynbgw_workers WHERE n = $n",
		"worker $n ($timing) is idle after a run");
	my ($runs, $due) = split /\|/,
	  q1("SELECT runs, next_run FROM dynbgw_workers WHERE n = $n");
	# Not too close to its due time, so that the wake is clearly apart.
	if (q1("SELECT '$due'::timestamptz - now() < '1 s'") eq 't')
	{
		eventually("runs > $runs AND next_run - now() > '1 s'
			FROM dynbgw_workers WHERE n = $n", "worker $n: a fresh due time");
		($runs, $due) = split /\|/,
		  q1("SELECT runs, next_run FROM dynbgw_workers WHERE n = $n");
	}
	q1("SELECT dynbgw_wake($n)");
	eventually("runs = $runs + 1 FROM dynbgw_workers WHERE n = $n",
		"worker $n ($timing) was woken");
	is(q1("SELECT last_trigger, next_run = '$due' FROM dynbgw_workers WHERE n = $n"),
		"wake|t", "worker $n ($timing): the next scheduled run is still due");
	eventually("runs = $runs + 2 AND last_trigger = 'schedule'
		FROM dynbgw_workers WHERE n = $n",
		"worker $n ($timing): the scheduled run comes");
	is(q1("SELECT last_started >= '$due' FROM dynbgw_workers WHERE n = $n"),
		't', "worker $n ($timing): ... at its due time");
	q1("SELECT dynbgw_stop(n => $n)");
}

###########################################################################
# 5. A stopping or restarting worker is not started by a wake.
###########################################################################

q1('CREATE TABLE gate (i int)');
q1(q{SELECT dynbgw_launch(5, 'SET exit_on_error = on; SELECT 1/(SELECT count(*) FROM gate)',
	naptime => '1 hour', restart => '30 s')});
eventually(q{state = 'restarting' FROM dynbgw_workers WHERE n = 5},
	'worker 5 waits for its restart');
my ($wrc, $wout, $werr) = $node->psql('postgres', 'SELECT dynbgw_wake(5)');
is($wout, 'f', 'a restarting worker is not woken');
like($werr, qr/NOTICE:  dynbgw worker 5 is not running\nDETAIL:  It is "restarting"/,
	'... and the notice says why');
ok(stays($node, q{SELECT state FROM dynbgw_workers WHERE n = 5}, 'restarting', 1),
	'... and it is not started');
q1('SELECT dynbgw_stop(n => 5)');

###########################################################################
# 6. Retries.
###########################################################################

# Fails while the sequence is below 3: twice, then succeeds.
q1(q{CREATE SEQUENCE tries;
	CREATE FUNCTION flaky() RETURNS int LANGUAGE plpgsql AS $$
	BEGIN
		IF nextval('tries') < 3 THEN
			RAISE EXCEPTION 'not yet' USING ERRCODE = 'P0001';
		END IF;
		RETURN 1;
	END $$});
q1(q{SELECT dynbgw_launch(6, 'SELECT flaky()', runs => 1, retry => 5,
	retry_delay => '200 ms')});
is(q1('SELECT outcome, runs, failures FROM dynbgw_wait(6)'),
	'succeeded|1|0', 'a run that succeeds on its third attempt succeeded');
is(attempts(6), 'schedule/1/failed retry/2/failed retry/3/succeeded',
	'dynbgw_runs shows its three attempts');
my @gaps = split /\n/, q1(q{
	SELECT round(extract(epoch FROM started - lag(finished) OVER (ORDER BY started)) * 1000)
	FROM dynbgw_runs WHERE n = 6 ORDER BY started OFFSET 1});
ok($gaps[0] >= 200 && $gaps[1] >= 400,
	"the delay doubles: $gaps[0] ms, then $gaps[1] ms");

q1(q{SELECT dynbgw_launch(7, 'SELECT 1/0', runs => 1, retry => 3,
	retry_delay => '10 ms')});
is(q1('SELECT outcome, runs, failures, sqlstate FROM dynbgw_wait(7)'),
	'failed|1|1|22012', 'a run whose retries all fail failed, once');
is(attempts(7),
	'schedule/1/failed retry/2/failed retry/3/failed retry/4/failed',
	'it was tried retry + 1 times');

# The next scheduled run takes over: with 300 ms doubling, attempts come
# 0.3 and 0.9 s after the first; the one at 2.1 s would be after the next
# run, due 1.5 s after the first.
q1(q{SELECT dynbgw_launch(8, 'SELECT 1/0', naptime => '1500 ms', retry => 10,
	retry_delay => '300 ms')});
eventually(q{count(DISTINCT launch) = 1 AND count(*) FILTER (WHERE trigger = 'schedule') >= 3
	FROM dynbgw_runs WHERE n = 8}, 'worker 8 made three scheduled runs');
is(q1(q{SELECT max(attempt) FROM dynbgw_runs WHERE n = 8}), '3',
	'retries stop at the next scheduled run');
is(q1(q{SELECT failures >= 2 FROM dynbgw_workers WHERE n = 8}), 't',
	'each scheduled run failed once its retries were cancelled');
q1('SELECT dynbgw_stop(n => 8)');

# A stop cancels a pending retry.
q1(q{SELECT dynbgw_launch(6, 'SELECT 1/0', runs => 1, retry => 3,
	retry_delay => '1 hour')});
eventually(q{next_run - now() > '50 min' FROM dynbgw_workers WHERE n = 6},
	'worker 6 has a retry pending in an hour');
my $t0 = time();
is(q1('SELECT dynbgw_stop(n => 6)'), 't', 'a worker with a retry pending stops');
ok(time() - $t0 < 10, 'at once');
is(q1('SELECT outcome FROM dynbgw_wait(6)'), 'stopped', 'it was stopped');
is(q1(q{SELECT count(*) FROM dynbgw_runs WHERE n = 6 AND launch =
	(SELECT max(launch) FROM dynbgw_runs WHERE n = 6)}), '1',
	'its retry never ran');

# run_timeout applies to each attempt.
$t0 = time();
q1(q{SELECT dynbgw_launch(6, 'SELECT pg_sleep(60)', runs => 1, retry => 2,
	retry_delay => '0', run_timeout => '300 ms')});
is(q1('SELECT outcome, sqlstate FROM dynbgw_wait(6)'), 'failed|57014',
	'a run whose attempts all time out failed');
is(q1(q{SELECT string_agg(attempt::text, ',' ORDER BY started) FROM dynbgw_runs
	WHERE n = 6 AND message LIKE '%run_timeout%' AND launch =
	(SELECT max(launch) FROM dynbgw_runs WHERE n = 6)}), '1,2,3',
	'each attempt was cut at run_timeout');
ok(time() - $t0 < 30, 'none ran for its whole minute');

# A wake brings a pending retry forward.
q1(q{SELECT dynbgw_launch(6, 'SELECT 1/0', retry => 3, retry_delay => '1 hour',
	naptime => '1 day')});
eventually(q{next_run - now() > '50 min' FROM dynbgw_workers WHERE n = 6},
	'worker 6 has a retry pending in an hour');
q1('SELECT dynbgw_wake(6)');
eventually(q{last_trigger = 'wake' AND state = 'idle' AND last_finished > last_started
	FROM dynbgw_workers WHERE n = 6}, 'the wake ran the retry');
is(q1(q{SELECT trigger, attempt FROM dynbgw_runs WHERE n = 6 ORDER BY started DESC LIMIT 1}),
	'wake|2', 'as its second attempt');
q1('SELECT dynbgw_stop(n => 6)');

###########################################################################
# 6b. A retry is never planned past PostgreSQL's last timestamp.  The
#     delay is chosen so that attempt 20's retry, 2^19 delays on, would
#     fall in the days between that and the end of the 64-bit range; wakes
#     run the attempts at once.
###########################################################################

my $delay = q1(q{SELECT make_interval(secs =>
	((9223371331200000000 + 350000000000 - (extract(epoch FROM now()) - 946684800) * 1e6)
	 / 524288 / 1e6)::float8)});
q1(qq{SELECT dynbgw_launch(6, 'SELECT 1/0', runs => 1, retry => 25,
	retry_delay => '$delay')});
my $readable = 1;
for my $attempt (1 .. 26)
{
	last unless $node->poll_query_until('postgres', qq{
		SELECT NOT EXISTS (SELECT FROM dynbgw_workers WHERE n = 6)
		    OR (SELECT count(*) >= $attempt FROM dynbgw_runs WHERE n = 6 AND launch =
		        (SELECT max(launch) FROM dynbgw_runs WHERE n = 6))});
	my ($r, $o, $e) = $node->psql('postgres',
		q{SELECT next_run AT TIME ZONE 'UTC' FROM dynbgw_workers WHERE n = 6});
	$readable &&= $r == 0 or diag("after attempt $attempt: $e");
	last if $o eq '';
	q1('SELECT dynbgw_wake(6)');
}
ok($readable, 'next_run was a valid timestamp after every attempt');
is(q1('SELECT outcome, runs FROM dynbgw_wait(6, \'10 s\')'), 'failed|1',
	'the run ended, failed, when its next retry would have been out of range');
ok(q1(q{SELECT max(attempt) < 26 FROM dynbgw_runs WHERE n = 6}) eq 't',
	'before its retries were used up');

###########################################################################
# 6c. Wakes from a parallel worker are refused, as NOTIFY is; wakes in
#     subtransactions that roll back take no memory.
###########################################################################

q1(q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour')});
q1(q{CREATE FUNCTION wake_safe(n int) RETURNS boolean LANGUAGE plpgsql
	PARALLEL SAFE AS 'BEGIN RETURN dynbgw_wake(n); END'});
my $force = server_major($node) >= 16 ? 'debug_parallel_query' : 'force_parallel_mode';
# The library loaded first, by the leader, so that the parallel worker
# loads it as it starts, not while in parallel mode, where defining
# dynbgw's settings from postgresql.conf draws a warning.
my ($prc, $pout, $perr) = $node->psql('postgres',
	"SELECT dynbgw_pid(1) > 0; SET $force = on; SET parallel_leader_participation = off;
	 SELECT wake_safe(1)");
like($perr, qr/cannot wake a dynbgw worker from a parallel worker/,
	'a wake from a parallel worker is refused');
SKIP:
{
	skip 'pg_backend_memory_contexts is from 14', 1 if server_major($node) < 14;
	is( q1(q{BEGIN;
		DO $$BEGIN
			FOR i IN 1 .. 100000 LOOP
				BEGIN
					PERFORM dynbgw_wake(1);
					RAISE EXCEPTION 'undo';
				EXCEPTION WHEN raise_exception THEN NULL;
				END;
			END LOOP;
		END$$;
		SELECT sum(total_bytes) < 1000000 FROM pg_backend_memory_contexts
		WHERE name = 'TopTransactionContext';
		COMMIT}), 't',
		'100000 wakes in subtransactions that roll back take no memory');
}
q1('SELECT dynbgw_stop(n => 1)');

###########################################################################
# 7. A wake storm: 8 sessions, 300 wakes each, some at commit of blocks.
###########################################################################

q1(q{SELECT dynbgw_launch(1,
	'WITH d AS (DELETE FROM queue RETURNING id, item) INSERT INTO seen SELECT id, item FROM d',
	naptime => '1 hour')});
q1('TRUNCATE seen');
my @storm;
for my $s (1 .. 8)
{
	my $h = $node->background_psql('postgres');
	$h->query_until(qr/go\n/, qq{\\echo go
		DO \$\$ BEGIN FOR i IN 1..300 LOOP
			INSERT INTO queue (item) VALUES ('s$s-' || i);
			PERFORM dynbgw_wake(1);
			IF i % 7 = 0 THEN PERFORM dynbgw_wake(1); END IF;
		END LOOP; END \$\$;
		CALL enqueue(50);
		\\echo done
	});
	push @storm, $h;
}
$_->query_until(qr/done\n/, '') for @storm;
$_->quit for @storm;
eventually(q{(SELECT count(*) FROM seen) = 8 * 350},
	'every row of the storm was taken');
is(q1(q{SELECT count(*) FROM queue}), '0', 'the queue is empty');
is(q1(q{SELECT state, pid IS NOT NULL, failures FROM dynbgw_workers WHERE n = 1}),
	'idle|t|0', 'the worker is idle, alive and never failed');
ok(q1(q{SELECT count(*) FROM dynbgw_runs WHERE n = 1 AND trigger = 'wake'}) <= 8 * 51,
	'no more runs than committed wakes');
q1('SELECT dynbgw_stop(n => 1)');

log_is_clean($node);
done_testing();


# Copyright (c) dynbgw authors
# slow: about 19 s

# Schedule accuracy of dynbgw's SQL workers.
#
# Run k of a worker is due at start + k * naptime (a fixed rate, not
# "naptime after the previous run"), so starts must not drift however long
# the worker lives.  A run that overruns its slot is followed at once by
# exactly one more run: the starts it missed are skipped, not made up in a
# burst.  With naptime 0 the runs follow each other back to back.  A cron
# schedule every second starts each run just after its second.
#
# Every run records clock_timestamp() into a table; the assertions are
# computed from those timestamps in SQL.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('main');

###########################################################################
# 1. Fixed rate: 30 runs, 100 ms apart.
#
# The error of run k is |t_k - t_0 - k * 100 ms|, where t_k is the
# clock_timestamp() taken by the INSERT of run k.  The tolerance of 20 ms
# covers the INSERT's own latency (transaction start, parse, plan,
# execution) and scheduler noise on a loaded 2-core CI box.  Drift is
# what the last run shows: a worker that lost 1 ms per run (by sleeping
# "naptime after the end of the previous run", or by rounding its sleeps
# to whole milliseconds) would end 29 ms off, beyond the tolerance, while
# a fixed-rate worker ends as close to its grid as it started.
###########################################################################

my $tolerance_ms = 20;

$node->safe_psql('postgres', 'CREATE TABLE ticks (t timestamptz)');
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'INSERT INTO ticks VALUES (clock_timestamp())',
	                       naptime => '100 ms', runs => 30)});
ok(wait_until_finished($node, 1),
	'worker with runs => 30 finished and left the view');

is($node->safe_psql('postgres', 'SELECT count(*) FROM ticks'),
	'30', 'exactly 30 runs were made');

# err_ms per run, then summary: max, p50, p99, and the last run's error.
my $errors = $node->safe_psql(
	'postgres', q{
	WITH runs AS (
		SELECT t, row_number() OVER (ORDER BY t) - 1 AS k FROM ticks
	), errs AS (
		SELECT k,
		       abs(extract(epoch FROM t - first_value(t) OVER (ORDER BY k))
		           * 1000 - k * 100) AS err_ms
		FROM runs
	)
	SELECT round(max(err_ms)::numeric, 3),
	       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY err_ms)::numeric, 3),
	       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY err_ms)::numeric, 3),
	       round((SELECT err_ms FROM errs ORDER BY k DESC LIMIT 1)::numeric, 3)
	FROM errs});
my ($max_ms, $p50_ms, $p99_ms, $last_ms) = split /\|/, $errors;
note "schedule error over 30 runs at 100 ms: "
  . "p50 $p50_ms ms, p99 $p99_ms ms, max $max_ms ms, last run $last_ms ms";

cmp_ok($max_ms, '<', $tolerance_ms,
	"every run starts within $tolerance_ms ms of start + k * naptime");
cmp_ok($last_ms, '<=', $tolerance_ms,
	'no cumulative drift: the last run is still within the tolerance');

###########################################################################
# 2. Overrun: each run takes 250 ms with a naptime of 100 ms.
#
# The INSERT comes after the sleep, so consecutive timestamps are as far
# apart as consecutive run starts.  Run 0 starts at S and ends at S+250;
# the starts due at S+100 and S+200 were missed and are skipped, and the
# next run starts at once, not at the next multiple of 100 ms (S+300), so
# the gaps are about 250 ms: never less than 200 ms, and less than 250 ms
# plus the tolerance above, which tells "at once" from "wait for the next
# 100 ms boundary" (300 ms).
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE t2 (t timestamptz)');
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2,
	     'SELECT pg_sleep(0.25); INSERT INTO t2 VALUES (clock_timestamp())',
	     naptime => '100 ms', runs => 4)});
ok(wait_until_finished($node, 2),
	'overrunning worker with runs => 4 finished');

is($node->safe_psql('postgres', 'SELECT count(*) FROM t2'),
	'4', 'exactly 4 runs were made');

my $gaps = $node->safe_psql(
	'postgres', q{
	WITH g AS (
		SELECT extract(epoch FROM t - lag(t) OVER (ORDER BY t)) * 1000 AS gap_ms
		FROM t2
	)
	SELECT round(min(gap_ms)::numeric, 3), round(max(gap_ms)::numeric, 3), count(gap_ms)
	FROM g WHERE gap_ms IS NOT NULL});
my ($min_gap, $max_gap, $ngaps) = split /\|/, $gaps;
note "overrun: gaps between runs from $min_gap ms to $max_gap ms";
is($ngaps, '3', 'three gaps between four runs');
cmp_ok($min_gap, '>=', 200, 'no two overrunning runs closer than 200 ms');
cmp_ok($max_gap, '<', 250 + $tolerance_ms,
	'after an overrun the next run starts at once');

###########################################################################
# 2b. Missed starts are skipped, not made up in a burst.
#
# With every run overrunning, "skip" and "make up" look alike.  Here only
# run 0 overruns (350 ms) and later runs are instant, and each run records
# now(), the start of its transaction, i.e. of the run.  Expected starts,
# relative to run 0: 0, ~350 (at once after the overrun; the starts due at
# 100, 200 and 300 are skipped), then 400, 500, 600 on the original grid.
# Making up the missed starts would instead give 350, 350, 350, 400: a
# burst of back-to-back runs.
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE t2b (t timestamptz)');
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(4,
	     'INSERT INTO t2b VALUES (now());
	      SELECT pg_sleep(CASE WHEN (SELECT count(*) FROM t2b) = 1 THEN 0.35 ELSE 0 END)',
	     naptime => '100 ms', runs => 5)});
ok(wait_until_finished($node, 4),
	'worker with one overrun and runs => 5 finished');

my @off = split /\n/,
  $node->safe_psql('postgres',
	q{SELECT round((extract(epoch FROM t - min(t) OVER ()) * 1000)::numeric, 3)
	  FROM t2b ORDER BY t});
note "one overrun: run starts at " . join(', ', @off) . " ms";
is(scalar(@off), 5, 'exactly 5 runs were made');
cmp_ok($off[1], '>=', 350, 'the run after the overrun waited for it to end');
cmp_ok($off[1], '<', 350 + $tolerance_ms,
	'the run after the overrun started at once');
for my $k (2 .. 4)
{
	my $due = ($k + 2) * 100;
	cmp_ok(abs($off[$k] - $due), '<', $tolerance_ms,
		"run $k starts on the original grid at $due ms, missed starts skipped");
}

###########################################################################
# 3. naptime 0: the runs follow each other back to back.  200 runs of a
# trivial INSERT, each a transaction of its own, take well under a second
# on an idle machine; "a few seconds" leaves room for a loaded one.
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE t3 (t timestamptz)');
my $t0 = time();
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(3, 'INSERT INTO t3 VALUES (clock_timestamp())',
	                       naptime => '0', runs => 200)});
ok(wait_until_finished($node, 3),
	'worker with naptime 0 and runs => 200 finished');
my $wall = time() - $t0;

my ($count, $span_ms) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT count(*), round((extract(epoch FROM max(t) - min(t)) * 1000)::numeric, 1) FROM t3'
  );
note sprintf("naptime 0: 200 runs in %s ms (launch to gone: %.2f s)",
	$span_ms, $wall);
is($count, '200', 'exactly 200 runs were made');
cmp_ok($span_ms, '<', 5000, '200 back-to-back runs took less than 5 s');

###########################################################################
# 4. A cron schedule every second: 5 runs, each starting just after its
# whole second (the same 20 ms tolerance as above), in 5 consecutive
# seconds, none skipped, none twice.  bench/run measures the precision on
# a quiet machine.
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE t4 (t timestamptz)');
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(4, 'INSERT INTO t4 VALUES (clock_timestamp())',
	                       schedule => '* * * * * *', runs => 5)});
ok(wait_until_finished($node, 4), 'every-second worker with runs => 5 finished');
my ($runs4, $seconds4, $span4, $late4) = split /\|/,
  $node->safe_psql(
	'postgres', q{
	SELECT count(*), count(DISTINCT date_trunc('second', t)),
	       extract(epoch FROM max(date_trunc('second', t)) - min(date_trunc('second', t)))::int,
	       round(max(extract(epoch FROM t - date_trunc('second', t)) * 1000)::numeric, 3)
	FROM t4});
note "every-second schedule: latest start $late4 ms after its second";
is("$runs4|$seconds4|$span4", '5|5|4',
	'5 runs, one in each of 5 consecutive seconds');
cmp_ok($late4, '<', $tolerance_ms, 'each started within 20 ms of its second');

###########################################################################
# 5. Waiting costs no CPU.  A worker is woken by a timer when a run is due
# instead of waking early and watching the clock, which cost about 1.4 ms
# of CPU a run, and all of a core for a worker with a naptime of 2 ms or
# less.  CPU time comes from the kernel's schedstat of the worker process.
###########################################################################

# Nanoseconds of CPU the process has had so far.
sub cpu_ns
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/schedstat") or die "schedstat of $pid: $!";
	return (split ' ', <$fh>)[0];
}

SKIP:
{
	skip 'no /proc/PID/schedstat here', 2 unless -r "/proc/$$/schedstat";

	my $pid = $node->safe_psql('postgres',
		q{SELECT dynbgw_launch(5, naptime => '1 ms')});
	my ($cpu0, $t0) = (cpu_ns($pid), time);
	# About 2 s of its wake-ups.
	$node->poll_query_until('postgres',
		'SELECT runs >= 2000 FROM dynbgw_workers WHERE n = 5')
	  or die 'the idle worker does not wake up';
	my $share = (cpu_ns($pid) - $cpu0) / 1e9 / (time - $t0);
	note sprintf 'idle worker at naptime 1 ms: %.1f %% of a core', 100 * $share;
	cmp_ok($share, '<', 0.5, 'an idle worker at naptime 1 ms uses under half a core');
	$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 5)');

	$node->safe_psql('postgres', 'CREATE TABLE t5 (t timestamptz)');
	$pid = $node->safe_psql('postgres',
		q{SELECT dynbgw_launch(5, 'INSERT INTO t5 VALUES (clock_timestamp())',
		                       schedule => '* * * * * *', runs => 100)});
	$node->poll_query_until('postgres', 'SELECT count(*) > 0 FROM t5')
	  or die 'no first run';
	my $runs0 = $node->safe_psql('postgres', 'SELECT count(*) FROM t5');
	$cpu0 = cpu_ns($pid);
	$node->poll_query_until('postgres', "SELECT count(*) >= $runs0 + 5 FROM t5")
	  or die 'the every-second worker stopped running';
	my $cpu1 = cpu_ns($pid);
	my $runs = $node->safe_psql('postgres', 'SELECT count(*) FROM t5') - $runs0;
	my $per_run_ms = ($cpu1 - $cpu0) / 1e6 / $runs;
	note sprintf 'every-second INSERT job: %.3f ms of CPU a run over %d runs',
	  $per_run_ms, $runs;
	cmp_ok($per_run_ms, '<', 0.7, 'an every-second run costs its worker under 0.7 ms of CPU');
	$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 5)');
}

$node->stop;
done_testing();


# Copyright (c) dynbgw authors

# How launches end, as dynbgw_wait() tells it, and the history of runs in
# dynbgw_runs, where the regression test (sql/outcomes.sql) cannot look:
# several sessions, several databases, restarts, cancels and other settings.
#
# - The README's "Waiting for a job from a script" runs as printed: psql
#   exits with status 0 and says "purge succeeded: CALL" when the job
#   succeeded, with status 3 and the job's error when it failed.
# - A session waiting in dynbgw_wait() sleeps until the launch ends and
#   wakes up promptly when another session stops the worker; several
#   waiters get the same answer, also from another database.
# - A worker waiting to be restarted is still running; one that gives up
#   after 5 failed starts has failed, with the error of its last run.
# - A wait can be cancelled (pg_cancel_backend, statement_timeout).
# - dynbgw_runs keeps the last dynbgw.history_size runs, none with 0.
# - After a later launch of the same number has ended, dynbgw_wait() tells
#   how that one ended.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('main');

# The columns of dynbgw_wait() that say how a launch ended, ended_at aside.
my $outcome_cols = 'outcome, runs, failures, sqlstate, message, result';

# Wait for the launch of worker $n on $nd to end, with dynbgw_wait($n) and no
# timeout of its own, and return its columns $cols (outcome, runs,
# failures, sqlstate, message, result unless given).  psql's timeout bounds
# the wait: a launch that never ends fails the test rather than hang it.
sub wait_outcome
{
	my ($nd, $n, $cols) = @_;
	$cols //= $outcome_cols;
	return $nd->safe_psql('postgres', "SELECT $cols FROM dynbgw_wait($n)",
		timeout => $PostgreSQL::Test::Utils::timeout_default);
}

# Start $sql in a new session of database $dbname, in the background, and
# return at once (psql does not wait for it): the session and its backend's
# PID.  waiter_answer() reads what it returned.
sub start_waiter
{
	my ($dbname, $sql, $tag) = @_;
	my $bg = $node->background_psql($dbname, on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/start $tag\n/,
		"\\echo start $tag\n$sql;\n\\echo end $tag :LAST_ERROR_SQLSTATE\n");
	return ($bg, $pid);
}

# Wait (bounded by the session's timeout) for what the statement of
# start_waiter() returned: its rows, and the session's last error's
# SQLSTATE (00000 if none).
sub waiter_answer
{
	my ($bg, $tag) = @_;
	my $out = $bg->query_until(qr/end $tag \w+\n/, '');
	my ($rows, $sqlstate) = $out =~ /\A(.*?)end $tag (\w+)\n/s;
	chomp($rows) if defined $rows;
	return ($rows, $sqlstate);
}

# Whether backend $pid sleeps in dynbgw_wait() (wait event "Extension"
# before PostgreSQL 17, "DynbgwWait" from 17).
sub sleeping_sql
{
	my ($pid) = @_;
	return qq{
SELECT state = 'active' AND wait_event IN ('Extension', 'DynbgwWait')
  FROM pg_stat_activity WHERE pid = $pid};
}

###########################################################################
# 1. The README's script, run exactly as printed.
#
# The ```sql block of README.md that starts with "-- /etc/dynbgw/purge.sql"
# is written to a file and run with the psql options of its crontab line.
# The job is worker 7, 'CALL purge_old_rows()' with runs => 1: with a
# procedure that deletes old rows, psql exits with status 0 and prints
# "purge succeeded: CALL"; with one that raises 'disk on fire', psql exits
# with status 3 and the error names the outcome and the message.
###########################################################################

my $script = readme_sql_block('-- /etc/dynbgw/purge.sql');
ok(defined $script, 'README.md has the purge.sql script');
$script //= "SELECT 'purge.sql not found in README.md';\n";
my $script_file = PostgreSQL::Test::Utils::tempdir() . '/purge.sql';
open(my $fh, '>', $script_file) or die "could not write $script_file: $!";
print $fh $script;
close($fh);

# psql -X -q -v ON_ERROR_STOP=1 -d <database postgres> -f purge.sql:
# (exit status, stdout, stderr).
sub run_purge_script
{
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			$node->installed_command('psql'), '-X', '-q', '-v',
			'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			'-f', $script_file
		],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return ($? >> 8, $out, $err);
}

$node->safe_psql(
	'postgres', q{
	CREATE TABLE old_rows (t timestamptz);
	INSERT INTO old_rows
	SELECT now() - (i + 0.5) * interval '1 day' FROM generate_series(0, 99) i;
	CREATE PROCEDURE purge_old_rows() LANGUAGE sql
	AS $$DELETE FROM old_rows WHERE t < now() - interval '30 days'$$;});

my ($status, $out, $err) = run_purge_script();
is($status, 0, 'the script exits with status 0 when the job succeeded')
  or diag "stderr: $err";
is($out, "purge succeeded: CALL\n", 'and says "purge succeeded: CALL"');
is($err, '', 'with nothing on stderr');
is($node->safe_psql('postgres', 'SELECT count(*) FROM old_rows'),
	'30', 'the job ran: rows older than 30 days are gone');

$node->safe_psql(
	'postgres', q{
	CREATE OR REPLACE PROCEDURE purge_old_rows() LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'disk on fire'; END$$;});
($status, $out, $err) = run_purge_script();
is($status, 3, 'the script exits with status 3 when the job failed');
like(
	$err,
	qr/ERROR:  purge failed: disk on fire/,
	'and its error says "purge failed: disk on fire"');
is($out, '', 'with nothing on stdout');
is( $node->safe_psql(
		'postgres', "SELECT $outcome_cols FROM dynbgw_wait(7, '0')"),
	'failed|1|1|P0001|disk on fire|',
	'dynbgw_wait(7) tells the same afterwards');

###########################################################################
# 2. Waiting across sessions.
#
# Worker 1, launched by one session, naps for an hour.  Another session
# waits for it with dynbgw_wait(1) and sleeps: it keeps sleeping while
# worker 2 runs once and ends (an end of another number is not its
# answer).  A third session stops worker 1; the waiter answers 'stopped'
# at once.  The wake-up is measured twice: in the server, from ended_at to
# the end of the waiter's call; in the test, from the stop's return to the
# waiter's answer.  Then three waiters of one worker all get the same
# answer, ended_at and PID included.
###########################################################################

my $pid1 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour')});
like($pid1, qr/^\d+$/, 'worker 1 launched');

my ($w, $wpid) = start_waiter(
	'postgres', q{
SELECT outcome, pid,
       round(extract(epoch FROM clock_timestamp() - ended_at) * 1000, 3)
FROM dynbgw_wait(1)}, 'w1');
ok($node->poll_query_until('postgres', sleeping_sql($wpid)),
	'the waiting session sleeps in dynbgw_wait()');
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'SELECT 1', runs => 1)});
ok(stays($node, sleeping_sql($wpid), 't', 1, 0.1),
	'and keeps sleeping while worker 2 runs and ends');
is(wait_outcome($node, 2, 'outcome'),
	'succeeded', 'worker 2 did end meanwhile');

is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)'),
	't', 'another session stops worker 1');
my $t_stopped = time();
my ($answer, $sqlstate) = waiter_answer($w, 'w1');
my $client_ms = (time() - $t_stopped) * 1000;
my ($outcome, $apid, $server_ms) = split /\|/, $answer // '';
is($outcome, 'stopped', "the waiter's answer is 'stopped'");
is($apid, $pid1, 'with the PID of the worker');
is($sqlstate, '00000', 'without an error');
note sprintf('wake-up: %.3f ms in the server (ended_at to the end of the '
	  . 'call), %.1f ms from the stop returning to the answer read',
	$server_ms // -1, $client_ms);
cmp_ok($server_ms, '<', 2000, 'the waiter woke up promptly (server side)');
cmp_ok($client_ms, '<', 2000,
	'the answer came promptly after the stop returned');
$w->quit;

# Three waiters, one stop.
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour')});
ok( $node->poll_query_until(
		'postgres', 'SELECT runs = 1 FROM dynbgw_workers WHERE n = 1'),
	'worker 1 launched again and did its first run');
my @waiters;
for my $i (1 .. 3)
{
	my ($bg, $pid) = start_waiter('postgres',
		'SELECT n, pid, outcome, runs, failures, sqlstate, message, result, '
		  . 'ended_at FROM dynbgw_wait(1)', "m$i");
	push @waiters, [ $bg, $pid, "m$i" ];
}
ok( $node->poll_query_until(
		'postgres', 'SELECT bool_and(s) FROM ('
		  . join(' UNION ALL ', map { sleeping_sql($_->[1]) } @waiters)
		  . ') AS w(s)'),
	'three sessions sleep in dynbgw_wait(1)');
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)'),
	't', 'worker 1 stopped');
my @answers = map { (waiter_answer($_->[0], $_->[2]))[0] // '' } @waiters;
like($answers[0], qr/^1\|\d+\|stopped\|1\|0\|\|\|SELECT 1\|\d{4}-/,
	"the first waiter's answer: stopped after its one run");
is($answers[1], $answers[0], 'the second waiter got the same answer');
is($answers[2], $answers[0], 'the third waiter got the same answer');
$_->[0]->quit for @waiters;

###########################################################################
# 3. From another database.
#
# Worker 3, launched from database postgres, runs 5 times every 500 ms and
# ends.  A session in database other (where the extension is created too)
# waits for it from right after the launch; its answer came after a real
# wait (ended_at is later than its statement's start) and is the answer
# dynbgw_wait(3) gives in postgres.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION dynbgw');
my $other = $node->background_psql('other', on_error_stop => 0);
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(3, 'SELECT count(*) FROM pg_class', naptime => '500 ms',
	                       runs => 5)});
$other->query_until(
	qr/start o\n/, q{\echo start o
SELECT o.n, o.pid, o.outcome, o.runs, o.failures, o.sqlstate, o.message,
       o.result, o.ended_at, o.ended_at > statement_timestamp()
FROM dynbgw_wait(3) o;
\echo end o :LAST_ERROR_SQLSTATE
});
($answer, $sqlstate) = waiter_answer($other, 'o');
$other->quit;
my $here = $node->safe_psql('postgres',
	q{SELECT n, pid, outcome, runs, failures, sqlstate, message, result, ended_at
	  FROM dynbgw_wait(3, '0')});
like($here, qr/^3\|\d+\|succeeded\|5\|0\|\|\|SELECT \d+\|/,
	'worker 3 succeeded after its 5 runs');
is($answer, "$here|t",
	'the waiter in database other waited and got the same answer');

###########################################################################
# 4. Restarts.
#
# Worker 4 has restart => '1 s' and a command that makes its first run end
# in FATAL (exit_on_error): every start dies at once, and after the fifth
# the worker gives up.  While it waits to be restarted, dynbgw_wait(4, '0')
# says 'running'; dynbgw_wait(4) returns once it has given up (about 4 s:
# four restart delays): 'failed', with the error of its last run, 5 runs
# and 5 failures, and the PID of its last process.
###########################################################################

my $offset = -s $node->logfile;
my $pid4 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(4, 'SET exit_on_error = on; SELECT 1/0',
	                       naptime => '1 hour', restart => '1 s')});
like($pid4, qr/^\d+$/, 'worker 4, failing at once, was launched');
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'restarting' FROM dynbgw_workers WHERE n = 4"),
	'worker 4 waits to be restarted');
is( $node->safe_psql(
		'postgres', "SELECT outcome, failures >= 1 FROM dynbgw_wait(4, '0')"),
	'running|t',
	"dynbgw_wait(4, '0') says 'running' while it waits to be restarted");
my $t0 = time();
is( wait_outcome($node, 4),
	'failed|5|5|22012|division by zero|',
	"dynbgw_wait(4) returns 'failed' once it gave up, with its last error");
note sprintf('dynbgw_wait(4) returned after %.2f s', time() - $t0);
# The outcome is in place before the last process has exited, and the
# postmaster logs its exit after that.
$node->wait_for_log(
	qr/dynbgw worker 4 will not be restarted.*background worker "dynbgw" \(PID \d+\) exited with exit code 1/s,
	$offset);
my $log4 = slurp_file($node->logfile, $offset);
like($log4, qr/dynbgw worker 4 will not be restarted/,
	'the log says it gave up');
my @exited =
  $log4 =~ /background worker "dynbgw" \(PID (\d+)\) exited with exit code 1/g;
is(scalar(@exited), 5, 'five processes of worker 4 exited with status 1');
is(wait_outcome($node, 4, 'pid'),
	$exited[-1] // '', 'the PID is that of its last process');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*), count(DISTINCT pid), count(DISTINCT launch),
	       bool_and(status = 'failed' AND sqlstate = '22012')
	FROM dynbgw_runs WHERE n = 4}),
	'5|5|1|t',
	'dynbgw_runs has its 5 failed runs, one per process, of one launch');

###########################################################################
# 5. Cancel.
#
# Worker 5 naps for an hour.  A session waiting for it is cancelled with
# pg_cancel_backend and fails with 57014 promptly; the session goes on.  A
# wait in a session with statement_timeout = '200ms' fails with 57014 too,
# after about that long.
###########################################################################

$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(5, 'SELECT 1', naptime => '1 hour')});
($w, $wpid) =
  start_waiter('postgres', 'SELECT outcome FROM dynbgw_wait(5)', 'c');
ok($node->poll_query_until('postgres', sleeping_sql($wpid)),
	'a session sleeps in dynbgw_wait(5)');
$t0 = time();
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($wpid)"),
	't', 'pg_cancel_backend() of the waiting session');
($answer, $sqlstate) = waiter_answer($w, 'c');
my $cancel_ms = (time() - $t0) * 1000;
is($sqlstate, '57014', 'the wait fails with 57014');
is($answer, '', 'and returns no row');
note sprintf('cancelled wait returned %.1f ms after pg_cancel_backend() was called',
	$cancel_ms);
cmp_ok($cancel_ms, '<', 2000, 'promptly');
# query(), not query_safe(): the session's stderr still holds the error.
is($w->query("SELECT outcome FROM dynbgw_wait(5, '0')"),
	'running', 'the session goes on, and worker 5 still runs');
$w->quit;

my ($stderr, $elapsed) = psql_error($node,
	q{SET statement_timeout = '200ms'; SELECT outcome FROM dynbgw_wait(5);},
	'a wait with statement_timeout fails');
like(
	$stderr,
	qr/ERROR:  57014: canceling statement due to statement timeout/,
	'with 57014, canceling statement due to statement timeout');
note sprintf('psql with the timed-out wait took %.2f s', $elapsed);
cmp_ok($elapsed, '<', 5, 'not much later than the timeout');
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 5)'),
	't', 'worker 5 stopped');

###########################################################################
# 6. The history is bounded.
#
# On a node with dynbgw.history_size = 5, a worker runs 20 times every
# 10 ms; its command's result is "SELECT k" for its k-th run (k rows).
# After it ended, dynbgw_runs holds its last 5 runs, oldest first, of the
# same launch.  Restarted with dynbgw.history_size = 0, the node keeps no
# runs, and dynbgw_wait() works all the same.
###########################################################################

my $small = new_node('small', conf => 'dynbgw.history_size = 5');
$small->safe_psql('postgres', 'CREATE SEQUENCE run_no');
$small->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'SELECT generate_series(1, nextval(''run_no''))',
	                       naptime => '10 ms', runs => 20)});
is(wait_outcome($small, 1),
	'succeeded|20|0|||SELECT 20', 'the worker succeeded after 20 runs');
is( $small->safe_psql(
		'postgres', q{
	SELECT count(*), count(DISTINCT launch), string_agg(result, ',')
	FROM dynbgw_runs}),
	'5|1|SELECT 16,SELECT 17,SELECT 18,SELECT 19,SELECT 20',
	'dynbgw_runs holds exactly the last 5 runs, of one launch');
is( $small->safe_psql(
		'postgres', q{
	SELECT bool_and(started > prev AND started >= prev_finished)
	FROM (SELECT started, lag(started) OVER (ORDER BY i) AS prev,
	             lag(finished) OVER (ORDER BY i) AS prev_finished
	      FROM (SELECT row_number() OVER () AS i, started, finished
	            FROM dynbgw_runs) r) l
	WHERE prev IS NOT NULL}),
	't',
	'oldest first: started increases');

$small->append_conf('postgresql.conf', 'dynbgw.history_size = 0');
$small->restart;
$small->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '10 ms', runs => 3)});
is(wait_outcome($small, 1),
	'succeeded|3|0|||SELECT 1',
	'with dynbgw.history_size = 0, dynbgw_wait() works');
is($small->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_runs'),
	'0', 'and dynbgw_runs has no rows');
log_is_clean($small);
$small->stop;

###########################################################################
# 7. dynbgw_wait() after the number is launched again.
#
# Worker 2 (its launch in part 2 succeeded) is launched once more, to run
# once and succeed; then again, to run once and fail, its run held by a
# lock that another session keeps.  While that launch runs, dynbgw_wait(2,
# '0') says 'running'; a session waiting for it and any later
# dynbgw_wait(2) get its outcome, 'failed', not the earlier success.
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE gate (i int)');
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'SELECT 1', runs => 1)});
is(wait_outcome($node, 2),
	'succeeded|1|0|||SELECT 1', 'worker 2 launched again: succeeded');

my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE gate;');
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'SELECT count(*) FROM gate; SELECT 1/0', runs => 1)});
ok( $node->poll_query_until(
		'postgres', q{
	SELECT wait_event_type = 'Lock' FROM pg_stat_activity
	WHERE backend_type = 'dynbgw' AND application_name = 'dynbgw worker 2'}),
	'the third launch of worker 2 waits for the lock in its run');
is($node->safe_psql('postgres', "SELECT $outcome_cols FROM dynbgw_wait(2, '0')"),
	'running|0|0|||', "dynbgw_wait(2, '0') says 'running' meanwhile");
($w, $wpid) =
  start_waiter('postgres', "SELECT $outcome_cols FROM dynbgw_wait(2)", 'r');
ok($node->poll_query_until('postgres', sleeping_sql($wpid)),
	'a session sleeps in dynbgw_wait(2)');
$locker->query_safe('COMMIT');
$locker->quit;
($answer, $sqlstate) = waiter_answer($w, 'r');
$w->quit;
is($answer, 'failed|1|1|22012|division by zero|',
	"the waiter gets the third launch's outcome: 'failed'");
is(wait_outcome($node, 2),
	'failed|1|1|22012|division by zero|', 'so does a later dynbgw_wait(2)');

registry_is($node, [], 'at the end');
log_is_clean($node);

$node->stop;
done_testing();


# Copyright (c) dynbgw authors

# Commands that try to break their worker, the server or its log, and what
# a worker does about them: it stays alive, counts the failed run, and
# leaves nothing behind.
#
# - A worker that runs back to back (naptime 0) still serves interrupts:
#   DROP DATABASE in another session, which waits for every process to
#   absorb a ProcSignalBarrier, finishes.
# - A failed run is cleaned up as a backend cleans up after an error:
#   portals a procedure kept across its COMMIT are dropped (memory and
#   temporary files do not grow run after run), and a replication slot the
#   run acquired is released.
# - The rules (no transaction control, no COPY to or from the client) hold
#   at every run, with the worker's own lexer settings, not only at launch:
#   a command that a launching session with standard_conforming_strings
#   off sees as one string literal cannot smuggle BEGIN, SAVEPOINT,
#   COMMIT AND CHAIN or COPY TO STDOUT into the worker.
# - statement_timeout is armed per statement, as for a client's query.
# - Several statements run in an implicit transaction block, so VACUUM
#   among them says what is wrong.
# - The log is protected: failure lines come at most once a second per
#   worker, and a huge error message is cut.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# wal_level logical for the replication slot of section 3.
my $node = new_node('main', conf => 'wal_level = logical');

# Wait until worker $n has done $runs runs, or is gone (a worker that dies
# instead of failing its run leaves the view); bounded by the default
# timeout.  The checks that follow tell which.
sub wait_for_runs
{
	my ($n, $runs) = @_;
	return $node->poll_query_until('postgres',
		"SELECT coalesce((SELECT runs >= $runs FROM dynbgw_workers WHERE n = $n), true)"
	);
}

# Launch worker $n with a command that a session with
# standard_conforming_strings off reads as one string literal, 'a\'...',
# while the worker, with standard_conforming_strings on, reads
# "SELECT 'a\'" and then $hidden as statements of their own.  $hidden must
# not contain single quotes.  Returns the worker's PID.
sub launch_smuggled
{
	my ($n, $hidden) = @_;
	return $node->safe_psql(
		'postgres', qq{
SET standard_conforming_strings = off;
SET escape_string_warning = off;
SELECT dynbgw_launch($n, \$cmd\$SELECT 'a\\'; $hidden; --'\$cmd\$, naptime => '1 hour');});
}

# From 19 standard_conforming_strings is always on, and nothing can be
# smuggled this way: the launch check and the worker read a command alike.
my $lexers_agree = server_major($node) >= 19;
if ($lexers_agree)
{
	like(
		psql_error($node, 'SET standard_conforming_strings = off'),
		qr/ERROR:  .*non-standard string literals are not supported/,
		'19 refuses standard_conforming_strings = off');
}

# Lines of the server log from $offset on.
sub log_lines
{
	my ($offset) = @_;
	return split /\n/, slurp_file($node->logfile, $offset);
}

# The VmRSS of process $pid, in kB.
sub rss_kb
{
	my ($pid) = @_;
	my ($kb) = slurp_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+) kB/m;
	return $kb;
}

###########################################################################
# 1. Workers that run back to back still absorb ProcSignalBarriers.
#
# DROP DATABASE waits until every process has absorbed a barrier.  Worker
# 1 runs SELECT 1 at naptime 0.  Worker 2 fails at naptime 0 before any
# statement starts (a missing table), as a role whose log_min_messages
# hides its failure lines: no executor and no log line, so nothing inside
# its runs checks for interrupts, and only its schedule loop can.  CREATE
# DATABASE and DROP DATABASE in another session must finish;
# statement_timeout bounds the wait, so that a worker that never serves
# its interrupts makes the DROP fail instead of hanging the test.  A worker
# without a command would only count its wake-ups, in a busy loop at
# naptime 0: such a launch is refused.
###########################################################################

# Superuser: in PostgreSQL 15 and older only a superuser role's settings
# may set log_min_messages.
$node->safe_psql(
	'postgres', q{
CREATE ROLE quiet SUPERUSER LOGIN;
ALTER ROLE quiet SET log_min_messages = fatal;});
my $pid_select = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '0')});
my $pid_missing = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'SELECT * FROM no_such_table', naptime => '0', role => 'quiet')}
);
ok( $node->poll_query_until(
		'postgres', q{
SELECT bool_and(runs >= 1000) FROM dynbgw_workers WHERE n IN (1, 2)}),
	'two workers run back to back');
my $t0 = time();
my ($ret, $stdout, $stderr) = $node->psql(
	'postgres', q{
SET statement_timeout = '20s';
CREATE DATABASE barrier_db;
DROP DATABASE barrier_db;},
	timeout => 60,
	timed_out => \my $timed_out);
my $elapsed = time() - $t0;
ok(!$timed_out && $ret == 0,
	'CREATE and DROP DATABASE finish while workers run back to back')
  or diag sprintf('after %.1f s: %s', $elapsed, $stderr);
is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(pid || ':' || (runs > 1000), ',' ORDER BY n)
  FROM dynbgw_workers WHERE n IN (1, 2)}),
	"$pid_select:true,$pid_missing:true",
	'both workers still run');
is( $node->safe_psql(
		'postgres', 'SELECT last_error FROM dynbgw_workers WHERE n = 2'),
	'relation "no_such_table" does not exist',
	'worker 2 fails its runs');
unlike(
	slurp_file($node->logfile),
	qr/dynbgw worker 2: command failed/,
	'worker 2 logs no failure line');
is( $node->safe_psql(
		'postgres', 'SELECT dynbgw_stop(n => 1) AND dynbgw_stop(n => 2)'),
	't', 'stopped the back-to-back workers');

my $err = psql_error($node,
	q{SELECT dynbgw_launch(3, naptime => '0');},
	'a worker without a command at naptime 0 is refused');
like(
	$err,
	qr/ERROR:  22023: naptime must be greater than 0 for a worker without a command/,
	'the refusal says why, with SQLSTATE 22023');
$node->safe_psql('postgres',
	'SELECT dynbgw_stop(n => 3) FROM dynbgw_workers WHERE n = 3');

###########################################################################
# 2. A procedure that COMMITs inside a FOR loop and then fails.
#
# The COMMIT turns the loop's cursor into a portal that is kept across
# commits, holding the rest of the query's 20000 rows of 1 kB; the error
# that follows must drop it, as a backend does after an error.  Otherwise
# each failed run leaves its rows behind, in memory and in a temporary
# file: the worker's RSS would grow by megabytes per run and pgsql_tmp by
# some 20 MB.  Over 30 failed runs (10 ms apart) both must stay flat.
###########################################################################

$node->safe_psql(
	'postgres', q{
CREATE PROCEDURE leak() LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 20000) g
	LOOP
		COMMIT;
		RAISE EXCEPTION 'boom';
	END LOOP;
END $$;});
my $pid2 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'CALL leak()', naptime => '10 ms')});
ok( $node->poll_query_until(
		'postgres', 'SELECT failures >= 10 FROM dynbgw_workers WHERE n = 2'),
	'the procedure fails its runs');
my $rss_before = rss_kb($pid2);
ok( $node->poll_query_until(
		'postgres', 'SELECT failures >= 40 FROM dynbgw_workers WHERE n = 2'),
	'30 more failed runs');
my $rss_after = rss_kb($pid2);
my ($pid2_now, $last_error2, $tmp_mb) = split /\|/,
  $node->safe_psql(
	'postgres', q{
SELECT pid, last_error,
       (SELECT coalesce(sum(size), 0) / (1024 * 1024) FROM pg_ls_tmpdir())
  FROM dynbgw_workers WHERE n = 2});
is("$pid2_now|$last_error2", "$pid2|boom",
	'the same worker fails its runs with the procedure\'s error');
cmp_ok($rss_after - $rss_before, '<', 30 * 1024,
	"the worker's RSS stays flat over 30 failed runs ($rss_before kB, then $rss_after kB)");
cmp_ok($tmp_mb, '<', 100,
	'no temporary files pile up over the failed runs');
is($node->safe_psql('postgres', "SELECT dynbgw_stop(n => 2)"),
	't', 'stopped the procedure worker');

###########################################################################
# 3. A run that fails while it holds a replication slot releases it.
#
# pg_logical_slot_get_changes() acquires slot s, then test_decoding
# rejects the option: the run fails.  The slot must not stay active for
# the worker: between runs it is free, and another session may drop it.
# The worker's next run finds no slot and fails again, and the worker
# lives on.
###########################################################################

$node->safe_psql('postgres',
	q{SELECT pg_create_logical_replication_slot('s', 'test_decoding')});
my $pid3 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(3, $$SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL, 'bogus-option', 'x')$$, naptime => '100 ms')}
);
ok( wait_for_runs(3, 3),
	'the slot worker has done three runs');
is( $node->safe_psql(
		'postgres', 'SELECT pid, failures >= 3, last_error FROM dynbgw_workers WHERE n = 3'),
	qq{$pid3|t|option "bogus-option" = "x" is unknown},
	'each run fails with test_decoding\'s error, the worker lives on');
# A run takes a moment of its 100 ms; wait for the moment between runs.
ok( $node->poll_query_until(
		'postgres', q{SELECT NOT active FROM pg_replication_slots WHERE slot_name = 's'}),
	'the slot is not active between runs');
# The drop fails while a run holds the slot: retry until it falls between
# runs.
ok( $node->poll_query_until(
		'postgres', q{SELECT true FROM pg_drop_replication_slot('s')}),
	'another session drops the slot');
my $runs3 = $node->safe_psql('postgres', 'SELECT runs FROM dynbgw_workers WHERE n = 3');
ok(wait_for_runs(3, $runs3 + 2), 'the worker goes on with its runs');
is( $node->safe_psql(
		'postgres', 'SELECT pid, last_error FROM dynbgw_workers WHERE n = 3'),
	qq{$pid3|replication slot "s" does not exist},
	'the same worker now fails because the slot is gone');
is($node->safe_psql('postgres', "SELECT dynbgw_stop(n => 3)"),
	't', 'stopped the slot worker');

###########################################################################
# 4. Transaction control smuggled past the launch check.
#
# Each command is one string literal to the launching session
# (standard_conforming_strings off) and several statements to the worker.
# The worker checks the rules again at its run: the run fails with 2D000,
# is counted, and leaves no transaction open (state idle, no xid, no
# xmin), and the same worker lives on.
###########################################################################

SKIP:
{
	skip 'nothing to smuggle past the launch check on 19', 16
	  if $lexers_agree;
	for my $hidden ('BEGIN; SELECT 1', 'SAVEPOINT s', 'RELEASE s',
		'COMMIT AND CHAIN')
	{
		my $log_offset = -s $node->logfile;
		my $pid = launch_smuggled(4, $hidden);
		like($pid, qr/^\d+$/, "\"$hidden\" passes the launch check when smuggled");
		ok(wait_for_runs(4, 1), "\"$hidden\": the worker has run");
		is( $node->safe_psql(
				'postgres', q{
	SELECT w.pid, w.runs, w.failures, w.last_error, a.state,
	       a.backend_xid IS NULL, a.backend_xmin IS NULL, a.xact_start IS NULL
	  FROM dynbgw_workers w JOIN pg_stat_activity a USING (pid)
	 WHERE w.n = 4}),
			"$pid|1|1|command must not contain transaction control statements|idle|t|t|t",
			"\"$hidden\": the run fails, the worker lives on, no transaction is left open"
		);
		like(
			slurp_file($node->logfile, $log_offset),
			qr/dynbgw worker 4: command failed with SQLSTATE 2D000/,
			"\"$hidden\": the failure is logged with SQLSTATE 2D000");
		$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 4)');
	}
}

###########################################################################
# 5. COPY to or from the client.
#
# A worker has no client: its standard output and input are the
# postmaster's, so COPY TO STDOUT would write into the server log.  The
# launch rejects such a command with 0A000; smuggled past the launch, the
# run fails with 0A000 and nothing reaches the log.
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE copied (t text)');
for my $command ('COPY (SELECT 1) TO STDOUT', 'COPY copied FROM STDIN')
{
	my $err = psql_error($node,
		"SELECT dynbgw_launch(5, '$command', naptime => '1 hour');");
	like(
		$err,
		qr/ERROR:  0A000: command must not COPY to or from the client/,
		"\"$command\" is rejected at launch with 0A000");
	# Should the launch have succeeded, leave no worker behind.
	$node->safe_psql('postgres',
		'SELECT dynbgw_stop(n => 5) FROM dynbgw_workers WHERE n = 5');
}

SKIP:
{
	skip 'nothing to smuggle past the launch check on 19', 8
	  if $lexers_agree;
	for my $hidden ('COPY (SELECT $q$FAKE LOG LINE$q$) TO STDOUT',
		'COPY copied FROM STDIN')
	{
		my $log_offset = -s $node->logfile;
		my $pid = launch_smuggled(5, $hidden);
		ok(wait_for_runs(5, 1), "\"$hidden\" smuggled: the worker has run");
		is( $node->safe_psql(
				'postgres',
				'SELECT pid, runs, failures, last_error FROM dynbgw_workers WHERE n = 5'),
			"$pid|1|1|command must not COPY to or from the client",
			"\"$hidden\" smuggled: the run fails");
		# Stop first: a worker's standard output is flushed when it exits.
		$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 5)');
		my $log = slurp_file($node->logfile, $log_offset);
		like(
			$log,
			qr/dynbgw worker 5: command failed with SQLSTATE 0A000/,
			"\"$hidden\" smuggled: the failure is logged with SQLSTATE 0A000");
		unlike($log, qr/^FAKE LOG LINE$/m,
			"\"$hidden\" smuggled: nothing is copied into the server log");
	}
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM copied'),
	'0', 'nothing was copied into the table');

###########################################################################
# 6. statement_timeout applies to each statement, as for a client's query.
#
# A SET earlier in the command arms the timeout for the statements after
# it: pg_sleep(5) is cancelled after 100 ms.  And a role's timeout of 2 s
# does not cancel a command of two statements of 1.2 s each.
###########################################################################

my $log_offset = -s $node->logfile;
my $pid6 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(6, $$SET statement_timeout = '100ms'; SELECT pg_sleep(5)$$, naptime => '1 hour')}
);
ok(wait_for_runs(6, 1), 'the worker with its own statement_timeout has run');
is( $node->safe_psql(
		'postgres', q{
SELECT pid, failures, last_error, last_duration < '2 s'
  FROM dynbgw_workers WHERE n = 6}),
	"$pid6|1|canceling statement due to statement timeout|t",
	'a SET statement_timeout in the command cancels a later statement');
like(
	slurp_file($node->logfile, $log_offset),
	qr/dynbgw worker 6: command failed with SQLSTATE 57014/,
	'the cancellation is logged with SQLSTATE 57014');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 6)');

$node->safe_psql(
	'postgres', q{
CREATE ROLE patient LOGIN;
ALTER ROLE patient SET statement_timeout = '2s';});
my $pid7 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(7, 'SELECT pg_sleep(1.2); SELECT pg_sleep(1.2)', naptime => '1 hour', role => 'patient')}
);
ok(wait_for_runs(7, 1), 'the worker of two statements has run');
is( $node->safe_psql(
		'postgres', q{
SELECT pid, runs, failures, last_error IS NULL, last_duration > '2.4 s'
  FROM dynbgw_workers WHERE n = 7}),
	"$pid7|1|0|t|t",
	'the role\'s statement_timeout applies to each statement, not to the run');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 7)');

###########################################################################
# 7. VACUUM among other statements.
#
# The statements of a command run in one implicit transaction block, like
# a client's multi-statement query, so VACUUM fails with the error a
# client would get (25001), and the log's hint says to launch VACUUM as a
# command of its own.
###########################################################################

$log_offset = -s $node->logfile;
my $pid8 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(8, 'VACUUM; SELECT 1', naptime => '1 hour')});
ok(wait_for_runs(8, 1), 'the VACUUM worker has run');
is( $node->safe_psql(
		'postgres',
		'SELECT pid, failures, last_error FROM dynbgw_workers WHERE n = 8'),
	"$pid8|1|VACUUM cannot run inside a transaction block",
	'VACUUM with another statement fails as in a transaction block');
my $log = slurp_file($node->logfile, $log_offset);
like(
	$log,
	qr/dynbgw worker 8: command failed with SQLSTATE 25001/,
	'the failure is logged with SQLSTATE 25001');
like(
	$log,
	qr/HINT:  .*launch a worker with "VACUUM" as its only statement/,
	'the log hints to launch VACUUM as a command of its own');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 8)');

###########################################################################
# 8. A failing command at naptime 0 does not flood the log.
#
# SELECT 1/0 back to back fails thousands of times a second; for 3 s the
# log gets at most one failure line a second (plus the first), and a
# later line counts the failures left out.  An error message of 100 kB is
# cut, in the log and in last_error, to under 512 bytes.
###########################################################################

$log_offset = -s $node->logfile;
$t0 = time();
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'SELECT 1/0', naptime => '0')});
ok( $node->poll_query_until(
		'postgres', q{
SELECT clock_timestamp() - launched_at >= '3 s' AND failures >= 100
  FROM dynbgw_workers WHERE n = 1}),
	'the failing worker ran back to back for 3 s');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)');
$elapsed = time() - $t0;
my @failed = grep { /dynbgw worker 1: command failed/ } log_lines($log_offset);
cmp_ok(scalar(@failed), '<=', int($elapsed) + 2,
	sprintf('at most one failure line a second (%.1f s)', $elapsed));
ok((grep { /command failed with SQLSTATE 22012, and \d+ more times since the last report/ } @failed),
	'a failure line counts the failures left out');

$log_offset = -s $node->logfile;
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, $cmd$DO $$BEGIN RAISE EXCEPTION '%', repeat('x', 100000) USING HINT = repeat('h', 100000); END$$$cmd$, naptime => '0')}
);
ok( $node->poll_query_until(
		'postgres', 'SELECT failures >= 100 FROM dynbgw_workers WHERE n = 2'),
	'the worker with a huge error fails its runs');
my ($len, $xs) = split /\|/,
  $node->safe_psql('postgres',
	q{SELECT length(last_error), last_error ~ '^x+$' FROM dynbgw_workers WHERE n = 2});
cmp_ok($len, '<', 512, 'last_error is cut to under 512 bytes');
is($xs, 't', 'last_error is the start of the message');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 2)');
my @lines = log_lines($log_offset);
my ($longest) = sort { $b <=> $a } map { length } @lines;
cmp_ok($longest, '<', 1000, 'no log line is longer than 1000 bytes');
ok((grep { /DETAIL:  x{400}/ } @lines), 'the log shows the cut message');
ok((grep { /HINT:  h{400}/ } @lines), 'and the cut hint');

registry_is($node, [], 'after the hostile commands');
log_is_clean($node);

$node->stop;
done_testing();


# Copyright (c) dynbgw authors
# slow: about 38 s

# A worker's authority is checked again before every run and at every
# (re)start, not only at launch, and a worker counts against the limits a
# session of its role would.
#
# - When the authority a worker was launched with is gone, it runs nothing
#   more and ends for good, with a log line that says why: its launcher may
#   no longer SET ROLE to its role, its role was dropped, its launcher lost
#   dynbgw_user, its role lost CONNECT on its database or, before
#   PostgreSQL 17, LOGIN.  It is not restarted, whatever its restart delay.
#   A superuser's workers are not affected by revoking dynbgw_user.
# - The role that launched a worker may stop it, even after losing its role.
# - A worker brought back by a crash-restart is checked too: without its
#   authority it ends at that start, for good.
# - A worker counts as a session of its role in its database: a launch, or a
#   restart, that would take the role or the database past its CONNECTION
#   LIMIT fails with 53300; superuser roles are exempt.
# - Workers launched by non-superusers leave dynbgw.reserved_worker_processes
#   of max_worker_processes free: a launch past that fails with 53000, or
#   waits with wait_for_slot; superusers' launches are not limited by it; a
#   reload of the setting takes effect.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# PostgreSQL::Test::Cluster turns restart_after_crash off; section 5 needs
# a crash-restart.
my $node = new_node('main', conf => 'restart_after_crash = on');

# $sql in database $db (postgres unless given) as role $role, or as the
# bootstrap superuser if $role is undef: its output.  A failure is reported,
# not fatal, so that the rest of the file still runs against code that
# behaves otherwise.
sub as_role
{
	my ($n, $role, $sql, $db) = @_;
	my ($ret, $out, $err) = $n->psql($db // 'postgres', $sql,
		extra_params => [ defined $role ? ('-U', $role) : () ]);
	diag 'as ' . ($role // 'superuser') . ": $sql\n$err" if $ret != 0;
	return $out;
}

# $sql as role $role, expecting an error (a test of its own): psql_error()
# with the session's user set through the environment.
sub error_as
{
	my ($n, $role, $sql, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	local $ENV{PGUSER} = $role;
	return scalar psql_error($n, $sql, $name);
}


# Worker $n ends for good because of $detail: it leaves dynbgw_workers, its
# process is gone (registry exactly @$rest), and the log, from $offset,
# says so and why, with no failed run logged for the authority check.
sub ends_for_good
{
	my ($n, $offset, $detail, $rest, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(wait_until_finished($node, $n), "$what: worker $n left dynbgw_workers");
	registry_is($node, $rest, $what);
	my $log = slurp_file($node->logfile, $offset);
	like(
		$log,
		qr/dynbgw worker $n ends for good: it has lost the authority it was launched with\n.*DETAIL:  \Q$detail\E\n/,
		"$what: the log says worker $n ends for good: \"$detail\"");
	unlike($log, qr/dynbgw worker $n: command failed/,
		"$what: the lost authority is not logged as a failed run");
}

# Each section starts from an empty registry, so that a worker a failed
# section left running does not take a number the next one uses: stop
# whatever is left (nothing, when the sections before passed).
sub clean_slate
{
	my ($n) = @_;
	$n->safe_psql('postgres',
		'SELECT count(dynbgw_stop(n => n)) FROM dynbgw_workers');
}

# A table every worker of this file inserts into: who ran, and when.
sub ticks_table
{
	my ($name, $grantee, $db) = @_;
	$node->safe_psql(
		$db // 'postgres', qq{
CREATE TABLE $name (who name DEFAULT current_user, t timestamptz DEFAULT now());
GRANT INSERT ON $name TO $grantee;});
}

sub count_rows
{
	my ($table, $db) = @_;
	return $node->safe_psql($db // 'postgres', "SELECT count(*) FROM $table");
}

# For $secs seconds, worker $n does not come back (neither in the view nor
# as a process) and $table in database $db does not grow; checked every
# 100 ms, failing at the first sight.  A bounded wait by nature: the
# assertion is that nothing happens.
sub stays_ended
{
	my ($n, $table, $db, $secs, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $rows = count_rows($table, $db);
	my $deadline = time() + $secs;
	my $bad;
	while (!defined $bad && time() < $deadline)
	{
		my $seen = $node->safe_psql('postgres', workers_seen_sql($n));
		my $now = count_rows($table, $db);
		$bad = "worker $n seen $seen times, $table has $now rows, not $rows"
		  if $seen ne '0' || $now ne $rows;
		usleep(100_000);
	}
	ok(!defined $bad,
		"$what: within $secs s worker $n does not come back and $table does not grow"
	) or diag $bad;
}

$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN;
GRANT dynbgw_user TO alice;
CREATE ROLE bob LOGIN;
GRANT bob TO alice;
CREATE ROLE boss LOGIN SUPERUSER;
GRANT dynbgw_user TO boss;
CREATE ROLE mallory LOGIN;
GRANT dynbgw_user TO mallory;
CREATE DATABASE appdb;});

###########################################################################
# 1. alice launches worker 1 as bob (she may SET ROLE to bob), with
# restart => '1 s', inserting a row as bob every 200 ms.  After a few runs,
# REVOKE bob FROM alice: the next run finds that out before running
# anything, so at most the run under way when the REVOKE committed adds a
# row.  The worker ends for good, says why in the log, and is not
# restarted; the table stops growing (watched while the worker is watched,
# 2.5 times its restart delay).
###########################################################################

ticks_table('ticks1', 'bob');
my $offset = -s $node->logfile;
my $pid = as_role($node, 'alice',
	q{SELECT dynbgw_launch(1, 'INSERT INTO ticks1 DEFAULT VALUES', naptime => '200 ms',
	                       role => 'bob', restart => '1 s')});
like($pid, qr/^\d+$/, 'alice launched worker 1 as bob');
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 3 FROM ticks1'),
	'worker 1 runs');
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT who, ',') FROM ticks1}),
	'bob', 'as bob');

my $at_revoke = $node->safe_psql('postgres',
	'REVOKE bob FROM alice; SELECT count(*) FROM ticks1');
ends_for_good(1, $offset,
	'The role that launched it may no longer SET ROLE to its role.',
	[], 'REVOKE bob FROM alice');
cmp_ok(count_rows('ticks1') - $at_revoke, '<=', 1,
	'at most the run under way at the REVOKE inserted a row after it');
stays_ended(1, 'ticks1', 'postgres', 2.5, 'REVOKE bob FROM alice, restart => 1 s');

###########################################################################
# 2. The worker's role is dropped while the worker runs: alice launches
# worker 2 as dave; dave's privilege on the table is revoked and dave
# dropped in one transaction.  The worker ends for good (before, it kept
# running as the OID of a role that no longer exists).
#
# Then the role that launched a worker may stop it even after losing its
# role: alice launches worker 3 as carol with an hour between runs (no run
# notices anything), REVOKE carol FROM alice; another dynbgw_user member
# may not stop worker 3, alice may.
###########################################################################

clean_slate($node);

$node->safe_psql('postgres', 'CREATE ROLE dave LOGIN; GRANT dave TO alice');
ticks_table('ticks2', 'dave');
$offset = -s $node->logfile;
$pid = as_role($node, 'alice',
	q{SELECT dynbgw_launch(2, 'INSERT INTO ticks2 DEFAULT VALUES', naptime => '200 ms',
	                       role => 'dave', restart => '1 s')});
like($pid, qr/^\d+$/, 'alice launched worker 2 as dave');
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 3 FROM ticks2'),
	'worker 2 runs');
$node->safe_psql('postgres',
	'BEGIN; REVOKE ALL ON ticks2 FROM dave; DROP ROLE dave; COMMIT;');
ends_for_good(2, $offset, 'Its role was dropped.', [], 'DROP ROLE dave');
stays_ended(2, 'ticks2', 'postgres', 2.5, 'DROP ROLE dave, restart => 1 s');

$node->safe_psql('postgres', 'CREATE ROLE carol LOGIN; GRANT carol TO alice');
$pid = as_role($node, 'alice',
	q{SELECT dynbgw_launch(3, 'SELECT 1', naptime => '1 hour', role => 'carol')});
like($pid, qr/^\d+$/, 'alice launched worker 3 as carol');
$node->safe_psql('postgres', 'REVOKE carol FROM alice');
my $err = error_as($node, 'mallory', 'SELECT dynbgw_stop(n => 3);',
	'a dynbgw_user member that did not launch worker 3 may not stop it');
like($err, qr/ERROR:  42501: permission denied to stop dynbgw worker 3/,
	'with 42501');
is($node->safe_psql('postgres', 'SELECT pid FROM dynbgw_workers WHERE n = 3'),
	$pid, 'worker 3 still runs, its loss not yet noticed');
$offset = -s $node->logfile;
is(as_role($node, 'alice', 'SELECT dynbgw_stop(n => 3)'),
	't', 'alice, who launched it, stops worker 3 after REVOKE carol FROM alice');
registry_is($node, [], 'after the stop');
like(slurp_file($node->logfile, $offset), qr/dynbgw worker 3 stopped/,
	'the log says worker 3 stopped');

###########################################################################
# 3. REVOKE dynbgw_user FROM alice ends the worker alice launched as
# herself.  Workers launched by superusers are not affected, also when the
# superuser was a member of dynbgw_user too, or launched as alice: a
# superuser's right to launch does not rest on dynbgw_user.  Those keep
# running, checked for 1.5 s (seven runs each).
###########################################################################

clean_slate($node);

ticks_table('ticks3', 'alice, boss');
$offset = -s $node->logfile;
my $pid4 = as_role($node, 'alice',
	q{SELECT dynbgw_launch(4, 'INSERT INTO ticks3 DEFAULT VALUES', naptime => '200 ms',
	                       restart => '1 s')});
like($pid4, qr/^\d+$/, 'alice launched worker 4 as herself');
my $pid5 = as_role($node, undef,
	q{SELECT dynbgw_launch(5, 'INSERT INTO ticks3 DEFAULT VALUES', naptime => '200 ms',
	                       role => 'alice')});
like($pid5, qr/^\d+$/, 'a superuser launched worker 5 as alice');
my $pid6 = as_role($node, 'boss',
	q{SELECT dynbgw_launch(6, 'INSERT INTO ticks3 DEFAULT VALUES', naptime => '200 ms')});
like($pid6, qr/^\d+$/, 'boss, a superuser and member of dynbgw_user, launched worker 6');
ok( $node->poll_query_until(
		'postgres', 'SELECT min(runs) >= 2 FROM dynbgw_workers WHERE n IN (4, 5, 6)'),
	'workers 4, 5 and 6 run');

$node->safe_psql('postgres', 'REVOKE dynbgw_user FROM alice, boss');
ends_for_good(4, $offset,
	'The role that launched it may no longer launch workers.',
	[ 5, 6 ], 'REVOKE dynbgw_user FROM alice');
my $runs = $node->safe_psql('postgres',
	'SELECT string_agg(runs::text, \',\' ORDER BY n) FROM dynbgw_workers WHERE n IN (5, 6)');
ok( stays(
		$node,
		"SELECT string_agg(n || ':' || pid, ',' ORDER BY n) FROM dynbgw_workers WHERE n IN (5, 6)",
		"5:$pid5,6:$pid6", 1.5),
	"the superusers' workers 5 and 6 keep running, with the same processes");
my ($r5, $r6) = split /,/, $runs;
is( $node->safe_psql(
		'postgres', qq{
	SELECT string_agg(n::text, ',' ORDER BY n) FROM dynbgw_workers
	WHERE n IN (5, 6) AND runs > CASE n WHEN 5 THEN $r5 ELSE $r6 END}),
	'5,6',
	'and keep running their command');
is($node->safe_psql('postgres',
		'SELECT dynbgw_stop(n => 5) AND dynbgw_stop(n => 6)'),
	't', 'stopped workers 5 and 6');
$node->safe_psql('postgres', 'GRANT dynbgw_user TO alice');

###########################################################################
# 4. REVOKE CONNECT ON DATABASE appdb from PUBLIC and from alice ends
# alice's worker in appdb.
###########################################################################

clean_slate($node);

ticks_table('ticks4', 'alice', 'appdb');
$offset = -s $node->logfile;
$pid = as_role($node, 'alice',
	q{SELECT dynbgw_launch(7, 'INSERT INTO ticks4 DEFAULT VALUES', naptime => '200 ms',
	                       database => 'appdb', restart => '1 s')});
like($pid, qr/^\d+$/, 'alice launched worker 7 in appdb');
ok($node->poll_query_until('appdb', 'SELECT count(*) >= 3 FROM ticks4'),
	'worker 7 runs');
$node->safe_psql('postgres',
	'REVOKE CONNECT ON DATABASE appdb FROM PUBLIC; REVOKE CONNECT ON DATABASE appdb FROM alice');
ends_for_good(7, $offset, 'Its role no longer has CONNECT on its database.',
	[], 'REVOKE CONNECT ON DATABASE appdb');
stays_ended(7, 'ticks4', 'appdb', 2.5, 'REVOKE CONNECT, restart => 1 s');
$node->safe_psql('postgres', 'GRANT CONNECT ON DATABASE appdb TO PUBLIC');

###########################################################################
# 5. A crash-restart brings back a worker whose authority went while no run
# could notice.  alice launches worker 1 as bob in appdb with
# restart => '1 s' and an hour between runs (it runs once, when ready);
# then REVOKE bob FROM alice, and kill -9 of a superuser's idle worker
# crash-restarts the server.  Worker 1 is brought back from its saved
# definition and fails its start check: as a background worker does with
# an error it does not catch, it logs the ERROR and exits with status 1.
# It is not restarted: the log says why, it does not come back, runs
# nothing, and its saved definition is gone.
###########################################################################

clean_slate($node);

$node->safe_psql('postgres', 'GRANT bob TO alice');
ticks_table('ticks5', 'bob', 'appdb');
my $pid1 = as_role($node, 'alice',
	q{SELECT dynbgw_launch(1, 'INSERT INTO ticks5 DEFAULT VALUES', naptime => '1 hour',
	                       database => 'appdb', role => 'bob', restart => '1 s')});
like($pid1, qr/^\d+$/, 'alice launched worker 1 as bob in appdb, restart => 1 s');
ok($node->poll_query_until('appdb', 'SELECT count(*) = 1 FROM ticks5'),
	'worker 1 ran once');
my $pid2 = as_role($node, undef, q{SELECT dynbgw_launch(2, naptime => '1 hour')});
$node->safe_psql('postgres', 'REVOKE bob FROM alice');

$offset = -s $node->logfile;
ok($pid2 =~ /^\d+$/ && kill('KILL', $pid2), "kill -9 of worker 2 ($pid2)");
wait_crash_restart($node, $offset);
ok($node->poll_query_until('postgres', 'SELECT true'),
	'the server is back after the crash-restart');
ok( log_shows(
		$node,
		qr/dynbgw worker 1 will not be restarted\n.*DETAIL:  It has lost the authority it was launched with\.\n/,
		$offset),
	'worker 1, brought back by the crash-restart, will not be restarted: it lost its authority'
);
my ($failed_pid) = slurp_file($node->logfile, $offset) =~
  /\[(\d+)\] ERROR:  dynbgw worker 1 has lost the authority it was launched with\n.*DETAIL:  The role that launched it may no longer SET ROLE to its role\.\n/;
ok(defined $failed_pid, 'its start failed with an error that says why');
$failed_pid //= 'none';
# The postmaster logs the exit once it has reaped the process, after the
# process logged that it will not be restarted: wait for that line too.
ok( log_shows(
		$node,
		qr/background worker "dynbgw" \(PID $failed_pid\) exited with exit code 1/,
		$offset),
	'and its process exited with status 1');
stays_gone($node, 1, 3, 'after the crash-restart, restart => 1 s');
is(count_rows('ticks5', 'appdb'), '1', 'the brought-back worker ran nothing');
is(scalar(() = glob($node->data_dir . '/pg_dynbgw/worker_1_*')),
	0, 'its saved definition is gone');

###########################################################################
# 6. Before PostgreSQL 17 a worker needs LOGIN, as a connection does:
# ALTER ROLE alice NOLOGIN ends alice's worker.  From 17, workers may run
# as NOLOGIN roles, so nothing is tested there.
###########################################################################

clean_slate($node);

SKIP:
{
	my $version = $node->safe_psql('postgres', 'SHOW server_version_num');
	skip "workers may run as NOLOGIN roles from PostgreSQL 17 ($version)", 7
	  if $version >= 170000;

	ticks_table('ticks6', 'alice');
	$offset = -s $node->logfile;
	$pid = as_role($node, 'alice',
		q{SELECT dynbgw_launch(1, 'INSERT INTO ticks6 DEFAULT VALUES', naptime => '200 ms',
		                       restart => '1 s')});
	like($pid, qr/^\d+$/, 'alice launched worker 1');
	ok($node->poll_query_until('postgres', 'SELECT count(*) >= 3 FROM ticks6'),
		'worker 1 runs');
	$node->safe_psql('postgres', 'ALTER ROLE alice NOLOGIN');
	ends_for_good(1, $offset, 'Its role may no longer log in.',
		[], 'ALTER ROLE alice NOLOGIN');
	stays_ended(1, 'ticks6', 'postgres', 2.5, 'NOLOGIN, restart => 1 s');
	$node->safe_psql('postgres', 'ALTER ROLE alice LOGIN');
}

###########################################################################
# 7. Connection limits.
#
# alice has CONNECTION LIMIT 2 and one session open, from which she
# launches: one worker fits, a second would be her third session (53300),
# also when a superuser launches it as alice.  A superuser role is exempt,
# as for connections.
#
# A restart is checked the same way: worker 2, launched from that session
# with restart => '1 s', dies of a FATAL error once alice's limit is down
# to 1; each restart then fails its start with 53300 (her open session
# takes her one connection), until the fifth failed start in a row, after
# which it is not restarted.
#
# A database with CONNECTION LIMIT 1 admits one worker of a non-superuser
# role; a second fails with 53300; a superuser's worker is exempt.
###########################################################################

clean_slate($node);

$node->safe_psql('postgres', 'ALTER ROLE alice CONNECTION LIMIT 2');
my $bg = $node->background_psql(
	'postgres',
	on_error_stop => 0,
	extra_params => [ '-U', 'alice' ]);
# Its timeout counts per query, not from its start: alice's session stays
# open through the whole section.
$bg->set_query_timer_restart;
$bg->query_safe('\set VERBOSITY verbose');
$pid1 = $bg->query_safe(
	q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour')});
like($pid1, qr/^\d+$/,
	'CONNECTION LIMIT 2, one session: alice launches worker 1 from it');
my ($out, $failed) =
  $bg->query(q{SELECT dynbgw_launch(2, 'SELECT 1', naptime => '1 hour')});
ok($failed, 'a second worker of alice fails to launch');
like(
	$bg->{stderr},
	qr/ERROR:  53300: too many connections for role "alice"\nDETAIL:  Its connection limit is 2; dynbgw workers count as connections\./,
	'with 53300, naming the limit');
$bg->{stderr} = '';
$err = psql_error($node,
	q{SELECT dynbgw_launch(3, 'SELECT 1', naptime => '1 hour', role => 'alice');},
	'a superuser launching as alice fails too');
like($err, qr/ERROR:  53300: too many connections for role "alice"/, 'with 53300');
registry_is($node, [1], 'the failed launches left nothing behind');
$node->safe_psql('postgres', 'ALTER ROLE boss CONNECTION LIMIT 0');
like(as_role($node, 'boss', q{SELECT dynbgw_launch(4, naptime => '1 hour')}),
	qr/^\d+$/, 'boss, a superuser with CONNECTION LIMIT 0, launches worker 4: exempt');
is($node->safe_psql('postgres',
		'SELECT dynbgw_stop(n => 1) AND dynbgw_stop(n => 4)'),
	't', 'stopped workers 1 and 4');

# Restarts count against the limit too.
clean_slate($node);
$node->safe_psql('postgres',
	'CREATE TABLE gate (i int); INSERT INTO gate VALUES (1); GRANT SELECT ON gate TO alice');
$pid2 = $bg->query_safe(
	q{SELECT dynbgw_launch(2, 'SET exit_on_error = on; SELECT 1/(SELECT count(*) FROM gate)',
	                       naptime => '200 ms', restart => '1 s')});
like($pid2, qr/^\d+$/, 'alice launches worker 2, restart => 1 s');
ok($node->poll_query_until('postgres',
		'SELECT runs >= 1 FROM dynbgw_workers WHERE n = 2'),
	'worker 2 runs');
$node->safe_psql('postgres', 'ALTER ROLE alice CONNECTION LIMIT 1');
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'DELETE FROM gate');
ok( log_shows($node, qr/dynbgw worker 2 will not be restarted\n.*DETAIL:  (.*)\n/,
		$offset),
	'worker 2 is not restarted in the end');
my $log = slurp_file($node->logfile, $offset);
like(
	$log,
	qr/dynbgw worker 2 will not be restarted\n.*DETAIL:  It exited abnormally 5 times in a row without completing a run\.\n/,
	'after five failed starts in a row');
my $limit_fatals = () = $log =~
  /ERROR:  too many connections for role "alice"\n.*DETAIL:  Its connection limit is 1; dynbgw workers count as connections\.\n/g;
is($limit_fatals, 4,
	'the four restarts after the FATAL run each failed on the connection limit');
stays_gone($node, 2, 2.5, 'worker 2, restart => 1 s');
$bg->quit;
$node->safe_psql('postgres', 'ALTER ROLE alice CONNECTION LIMIT -1');

# The database's limit.
$node->safe_psql('postgres', 'CREATE DATABASE limdb CONNECTION LIMIT 1');
like( as_role(
		$node, 'alice',
		q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour', database => 'limdb')}),
	qr/^\d+$/,
	'database with CONNECTION LIMIT 1: alice launches one worker in it');
$err = error_as($node, 'alice',
	q{SELECT dynbgw_launch(2, 'SELECT 1', naptime => '1 hour', database => 'limdb');},
	'a second worker in it fails');
like(
	$err,
	qr/ERROR:  53300: too many connections for database "limdb"\nDETAIL:  Its connection limit is 1; dynbgw workers count as connections\./,
	'with 53300, naming the database and its limit');
like( as_role(
		$node, undef,
		q{SELECT dynbgw_launch(3, 'SELECT 1', naptime => '1 hour', database => 'limdb')}),
	qr/^\d+$/,
	"a superuser's worker in it is exempt");
registry_is($node, [ 1, 3 ], 'workers in limdb');
is($node->safe_psql('postgres',
		'SELECT dynbgw_stop(n => 1) AND dynbgw_stop(n => 3)'),
	't', 'stopped workers 1 and 3');

log_is_clean($node);
$node->stop;

###########################################################################
# 8. Headroom, on a node with max_worker_processes = 8 and the default
# dynbgw.reserved_worker_processes = 2: workers launched by non-superusers
# may take 8 - 2 = 6 background worker processes.  The logical replication
# launcher takes one of the 8 but does not count against those 6, so alice
# launches 6 workers (7 processes in all), and the 7th fails with 53000 at
# once although a process is free.  With wait_for_slot her launch waits
# (for headroom: a process is free all along) until another session stops
# one of her workers.  A superuser launches one more all the same, which
# takes the last process.  Once dynbgw.reserved_worker_processes is
# reloaded as 0, alice may take the process the superuser's worker leaves.
###########################################################################

my $small = new_node('small', max_worker_processes => 8);
$small->safe_psql('postgres',
	'CREATE ROLE alice LOGIN; GRANT dynbgw_user TO alice');
is(launcher_slots($small), '1',
	'the logical replication launcher takes one of the 8 processes');
is( ($small->psql(
		'postgres', q{LOAD 'dynbgw'; SHOW dynbgw.reserved_worker_processes}))[1],
	'2', 'dynbgw.reserved_worker_processes is 2 by default');

my $launched = 0;
for my $n (1 .. 6)
{
	$launched++
	  if as_role($small, 'alice',
		"SELECT dynbgw_launch($n, naptime => '1 hour')") =~ /^\d+$/;
}
is($launched, 6, 'alice launches 6 = 8 - 2 workers');
my $bgworkers = q{SELECT count(*) FROM pg_stat_activity
                  WHERE backend_type IN ('dynbgw', 'logical replication launcher')};
is($small->safe_psql('postgres', $bgworkers), '7',
	'7 of the 8 background worker processes are taken');
my $elapsed;
($err, $elapsed) = do
{
	local $ENV{PGUSER} = 'alice';
	psql_error($small, q{SELECT dynbgw_launch(7, naptime => '1 hour');},
		"alice's 7th worker fails to launch");
};
like(
	$err,
	qr/ERROR:  53000: too many dynbgw workers of non-superusers\nDETAIL:  Workers launched by non-superusers may take 6 of the 8 background worker processes; "dynbgw.reserved_worker_processes" keeps the rest for others\.\nHINT:  /,
	'with 53000, saying how many they may take');
cmp_ok($elapsed, '<', 5, 'at once');

# A launch of alice's that waits for room.
$bg = $small->background_psql(
	'postgres',
	on_error_stop => 0,
	extra_params => [ '-U', 'alice' ]);
$bg->set_query_timer_restart;
my $bg_pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_until(qr/launching/,
	"\\echo launching\nSELECT dynbgw_launch(7, naptime => '1 hour', wait_for_slot => '10 s');\n"
);
ok( $small->poll_query_until(
		'postgres', qq{
	SELECT state = 'active' AND wait_event IN ('Extension', 'DynbgwLaunch')
	FROM pg_stat_activity WHERE pid = $bg_pid}),
	"alice's launch of worker 7 with wait_for_slot waits");
is($small->safe_psql('postgres', $bgworkers), '7',
	'for headroom: a background worker process is free');
my $t0 = time();
is(as_role($small, 'alice', 'SELECT dynbgw_stop(n => 1)'),
	't', 'alice stops her worker 1 from another session');
($out, $failed) = $bg->query("SELECT 'done'");
ok(!$failed, 'the waiting launch did not fail') or diag $bg->{stderr};
like($out, qr/^\d+\ndone$/, 'it returned a PID');
cmp_ok(time() - $t0, '<', 10, 'soon after the stop');
$bg->quit;
registry_is($small, [ 2 .. 7 ], 'alice has 6 workers again');

# Superusers are not held to the headroom, only to max_worker_processes.
like(as_role($small, undef, q{SELECT dynbgw_launch(8, naptime => '1 hour')}),
	qr/^\d+$/, 'a superuser launches worker 8 all the same');
is($small->safe_psql('postgres', $bgworkers), '8',
	'which takes the last background worker process');
$err = psql_error($small, q{SELECT dynbgw_launch(1, naptime => '1 hour');},
	'a superuser launch past max_worker_processes fails');
like(
	$err,
	qr/ERROR:  53000: could not register dynbgw worker 1\n.*DETAIL:  All background worker slots are in use\./s,
	'for want of a background worker slot, not of headroom');

# A reload of the setting: first a process is free, but not for alice.
is($small->safe_psql('postgres', 'SELECT dynbgw_stop(n => 8)'),
	't', "the superuser's worker 8 is stopped");
$err = error_as($small, 'alice', q{SELECT dynbgw_launch(1, naptime => '1 hour');},
	'with a process free, alice still may not launch a 7th worker');
like($err, qr/ERROR:  53000: too many dynbgw workers of non-superusers/,
	'for want of headroom');
# ALTER SYSTEM knows the setting only once the library is loaded.
is( ($small->psql(
		'postgres', q{LOAD 'dynbgw';
	  ALTER SYSTEM SET dynbgw.reserved_worker_processes = 0;
	  SELECT pg_reload_conf();}))[1],
	't',
	'ALTER SYSTEM SET dynbgw.reserved_worker_processes = 0, and reload');
ok( $small->poll_query_until(
		'postgres',
		q{SELECT current_setting('dynbgw.reserved_worker_processes')}, '0'),
	'the reload took effect');
like(as_role($small, 'alice', q{SELECT dynbgw_launch(1, naptime => '1 hour')}),
	qr/^\d+$/, 'with dynbgw.reserved_worker_processes = 0 alice launches a 7th worker');
is($small->safe_psql('postgres', $bgworkers), '8', 'which takes the last process');

log_is_clean($small);
$small->stop;

###########################################################################
# 10. A right granted directly (EXECUTE on dynbgw_launch, not dynbgw_user)
# in a database whose extension is then upgraded: the upgrade makes
# dynbgw_launch anew and carries the grant over, and the check follows the
# grant to the new function, so the worker keeps running; revoking the
# grant on the new function ends it at its next run.  Before, the upgrade
# dropped the grant and ended the worker; earlier still, the check failed
# with "function with OID ... does not exist" and the runs after went on
# unchecked.
###########################################################################

my $up = new_node('upgrade');
$up->safe_psql('postgres', q{
	CREATE ROLE carol LOGIN;
	CREATE DATABASE old;});
$up->safe_psql('old', q{
	CREATE EXTENSION dynbgw VERSION '1.0';
	GRANT EXECUTE ON FUNCTION dynbgw_launch(integer, text, interval, name, name,
	                                        bigint, interval, text, interval) TO carol;
	CREATE TABLE t (i int); GRANT INSERT ON t TO carol;});
like(as_role($up, 'carol', q{SELECT dynbgw_launch(1, 'INSERT INTO t VALUES (1)', '200 ms')}, 'old'),
	qr/^\d+$/, 'carol, with EXECUTE granted directly, launches worker 1 in a 1.0 database');
my $up_offset = -s $up->logfile;
$up->safe_psql('old', 'ALTER EXTENSION dynbgw UPDATE');
my $rows = $up->safe_psql('old', 'SELECT count(*) FROM t');
ok($up->poll_query_until('old', "SELECT count(*) > $rows + 3 FROM t"),
	'after the upgrade, worker 1 goes on running');
unlike(slurp_file($up->logfile, $up_offset), qr/ends for good/,
	'it did not lose its authority');
# A function of the same name planted in the extension's schema is not
# the extension's, and does not keep the worker going.
$up->safe_psql('old', q{
	CREATE FUNCTION public.dynbgw_launch(a1 int, a2 int, a3 int, a4 int, a5 int, a6 int,
	                                     a7 int, a8 int, a9 int, a10 int, a11 int, a12 int,
	                                     a13 int, a14 int)
	RETURNS int LANGUAGE sql AS 'SELECT 0';
	GRANT EXECUTE ON FUNCTION public.dynbgw_launch(int, int, int, int, int, int, int, int,
	                                               int, int, int, int, int, int) TO carol;
	REVOKE EXECUTE ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint,
	                                         interval, text, interval, interval, text, text,
	                                         boolean, integer, interval, boolean) FROM carol});
$up->wait_for_log(qr/dynbgw worker 1 ends for good/, $up_offset);
pass('revoking the grant on the new function ends it for good');
ok($up->poll_query_until('postgres', 'SELECT count(*) = 0 FROM dynbgw_workers'),
	'it left the registry');
$up->stop;

###########################################################################
# 9. A worker brought back by a crash-restart that gives up (here: its
# authority is gone) ends its registration with the postmaster too, so it
# gives its background worker process back at once.  A crash-restart
# renumbers registrations, so the worker finds its own; before, it kept
# the process until its restart delay (an hour here) had passed.
###########################################################################

my $crash = new_node('crash', max_worker_processes => 4,
	conf => 'restart_after_crash = on');
$crash->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN; GRANT dynbgw_user TO alice;
	CREATE ROLE bob LOGIN; GRANT bob TO alice;});
is(launcher_slots($crash), '1', 'the logical replication launcher takes 1 of 4 processes');
like(as_role($crash, 'alice', q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour',
                                                   role => 'bob', restart => '1 hour')}),
	qr/^\d+$/, 'alice launches worker 1 as bob, restart 1 hour');
my $victim = $crash->safe_psql('postgres', q{SELECT dynbgw_launch(2, naptime => '1 hour')});
$crash->safe_psql('postgres', 'REVOKE bob FROM alice');
my $crash_offset = -s $crash->logfile;
kill('KILL', $victim);
wait_crash_restart($crash, $crash_offset);
ok($crash->poll_query_until('postgres', 'SELECT true'), 'the server is back');
$crash->wait_for_log(qr/dynbgw worker 1 will not be restarted/, $crash_offset);
registry_is($crash, [], 'worker 1 gave up after the crash-restart');
for my $n (3 .. 5)
{
	like(as_role($crash, undef, "SELECT dynbgw_launch($n, naptime => '1 hour')"),
		qr/^\d+$/, "worker $n launches: the 3 free processes are free indeed");
}
$crash->stop;
done_testing();

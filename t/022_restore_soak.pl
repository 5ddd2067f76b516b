
# Copyright (c) dynbgw authors

# The restore at server start, with dynbgw preloaded and
# dynbgw.restore_databases = 'app, nosuchdb, reports': saved definitions of
# two roles in two databases come back by themselves.
#
# - After each of three restarts and three crash-restarts, every definition
#   runs exactly once, in its own database, as the role that saved it, with
#   max_worker_processes just large enough: the workers, the logical
#   replication launcher, the restore launcher and one restore worker.
# - Numbers are server-wide: worker 6 is saved in app (by bob) and in
#   reports (by alice).  app comes first in the list, so its 6 runs, and
#   the log says why reports' 6 was not restored; it is never launched
#   twice, nor said to be restored.
# - A database of the list that does not exist is reported once and
#   skipped; the databases after it are restored.
# - Each definition gets its log line: 'dynbgw worker N of database "db"
#   restored, PID p' or '... was not restored: <error>'.
# - A clean stop logs no FATAL from the restore launcher.
# - A malformed list is refused: by ALTER SYSTEM, and in postgresql.conf by
#   the server as it starts (it does not start, or it says so once and
#   leaves the setting at its default).

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# The saved definitions: number, database, role.  Worker 6 is saved twice.
my @saved = (
	[ 1, 'app', 'alice' ],
	[ 2, 'app', 'alice' ],
	[ 3, 'app', 'bob' ],
	[ 6, 'app', 'bob' ],
	[ 4, 'reports', 'bob' ],
	[ 5, 'reports', 'alice' ],
	[ 6, 'reports', 'alice' ]);
# What runs after a restore: all but reports' 6, which app's 6 holds.
my @runs = grep { !($_->[0] == 6 && $_->[1] eq 'reports') } @saved;
my $expected = join(',',
	map { "$_->[0]:$_->[2]\@$_->[1]" } sort { $a->[0] <=> $b->[0] } @runs);

# Exactly enough background worker processes: one a worker, the logical
# replication launcher, the restore launcher and one restore worker.
my $max_worker_processes = @runs + 1 + 2;

my $node = PostgreSQL::Test::Cluster->new('soak');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'dynbgw'
dynbgw.restore_databases = 'app, nosuchdb, reports'
restart_after_crash = on
max_worker_processes = $max_worker_processes});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION dynbgw;
CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
GRANT dynbgw_user TO alice, bob;
CREATE DATABASE app; CREATE DATABASE reports;
REVOKE CONNECT ON DATABASE app, reports FROM PUBLIC;
GRANT CONNECT ON DATABASE app, reports TO alice, bob;});
$node->safe_psql($_, 'CREATE EXTENSION dynbgw') for ('app', 'reports');
is(launcher_slots($node), '1',
	'besides dynbgw, the logical replication launcher takes one background worker process');

# Workers as "n:role@database", in number order.
my $workers_sql = q{
SELECT coalesce(string_agg(n || ':' || role || '@' || database, ',' ORDER BY n), '')
FROM dynbgw_workers WHERE pid IS NOT NULL};


# After a start whose log begins at $offset: every definition is back
# once, as its owner, in its database, and the log says so, a line each;
# reports' 6 is said not to be restored, taken by bob's in app, and never
# said to be restored; nosuchdb is reported once.  Once the workers are
# back the log lines are waited for; if they are not, the log is read as
# it is, so that a restore that never ends costs one timeout.
sub all_back
{
	my ($offset, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;

	my $back = ok($node->poll_query_until('postgres', $workers_sql, $expected),
		"$what: every definition runs, as its owner, in its database");
	my @ns = map { $_->[0] } sort { $a->[0] <=> $b->[0] } @runs;
	if ($back)
	{
		registry_is($node, \@ns, $what);
	}
	else
	{
		is($node->safe_psql('postgres', $registry_sql),
			join(',', @ns) . '|0', "$what: registry exact (workers: @ns)");
	}

	my @lines = (
		(map { qr/dynbgw worker $_->[0] of database "$_->[1]" restored, PID \d+/ } @runs),
		qr/dynbgw worker 6 of database "reports" was not restored: [^\n]*taken by another worker[^\n]*"bob"[^\n]*"app"/);
	if ($back)
	{
		log_shows($node, $_, $offset) for @lines;
	}
	my $log = slurp_file($node->logfile, $offset);
	for my $def (@runs)
	{
		my ($n, $db) = @$def;
		my $count = () =
		  $log =~ /dynbgw worker $n of database "$db" restored, PID \d+/g;
		is($count, 1, "$what: the log says once that worker $n of $db was restored");
	}
	like($log, $lines[-1],
		"$what: the log says worker 6 of reports was not restored, held by bob's in app");
	unlike($log, qr/dynbgw worker 6 of database "reports" restored/,
		"$what: worker 6 of reports is never said to be restored");
	my $missing = () = $log =~ /^.*(?:LOG|WARNING|ERROR|FATAL): .*nosuchdb.*$/mg;
	is($missing, 1, "$what: nosuchdb, which does not exist, is reported once");
	return $back;
}

###########################################################################
# 1. alice and bob save their definitions, each launched from its database
# and stopped at once (worker 6 in app first, then in reports).
###########################################################################

for my $def (@saved)
{
	my ($n, $db, $role) = @$def;
	my ($ret, $out, $err) = $node->psql(
		$db,
		qq{SELECT dynbgw_launch($n, 'SELECT 1', naptime => '1 hour', persist => true) > 0
		     AND dynbgw_stop(n => $n)},
		extra_params => [ '-U', $role ]);
	is($out, 't', "$role saves worker $n in $db") or diag $err;
}
registry_is($node, [], 'nothing runs');

###########################################################################
# 2. Restarts, three in a row (the rest of a round is left out once the
# workers do not come back: each such round costs a timeout).
###########################################################################

my $offset;
for my $round (1 .. 3)
{
	$offset = -s $node->logfile;
	$node->restart;
	last unless all_back($offset, "restart $round");
}

###########################################################################
# 3. Crash-restarts, three in a row: kill -9 of a worker that was not
# saved, which takes the last free background worker process.
###########################################################################

for my $round (1 .. 3)
{
	my ($ret, $victim, $err) = $node->psql('postgres',
		q{SELECT dynbgw_launch(7, naptime => '1 hour', wait_for_slot => '10 s')});
	like($victim, qr/^\d+$/,
		"crash-restart $round: a superuser launches worker 7, not saved")
	  or diag $err;
	last unless $victim =~ /^\d+$/;
	$offset = -s $node->logfile;
	ok(kill('KILL', $victim), "crash-restart $round: kill -9 of worker 7 ($victim)");
	wait_crash_restart($node, $offset);
	last unless all_back($offset, "crash-restart $round");
}

###########################################################################
# 4. ALTER SYSTEM refuses a malformed list; a clean stop logs no FATAL of
# the restore launcher.
###########################################################################

my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nALTER SYSTEM SET dynbgw.restore_databases = 'app,,'");
isnt($ret, 0, 'ALTER SYSTEM SET dynbgw.restore_databases = \'app,,\' fails');
like(
	$err,
	qr/ERROR:  22023: invalid value for parameter "dynbgw.restore_databases": "app,,"/,
	'with 22023');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET dynbgw.restore_databases');

# No restore runs by now: a FATAL of a "dynbgw restore..." process can only
# be the launcher's ("dynbgw restore launcher"; 1.1 named it "dynbgw
# restore" like its restore workers).
$offset = -s $node->logfile;
$node->stop;
unlike(
	slurp_file($node->logfile, $offset),
	qr/FATAL: [^\n]*"dynbgw restore/,
	'a clean stop logs no FATAL of the dynbgw restore launcher');
log_is_clean($node);

###########################################################################
# 5. A malformed list in postgresql.conf: the server does not start, or
# says so once and keeps the default, with nothing to restore.
###########################################################################

$node->append_conf('postgresql.conf', "dynbgw.restore_databases = 'app,,'");
$offset = -s $node->logfile;
my $started = $node->start(fail_ok => 1);
my $log = slurp_file($node->logfile, $offset);
like(
	$log,
	qr/invalid value for parameter "dynbgw\.restore_databases": "app,,"/,
	'with dynbgw.restore_databases = \'app,,\' in postgresql.conf, the server says the value is invalid'
);
my $said = () =
  $log =~ /^.*(?:LOG|WARNING|ERROR|FATAL): .*"dynbgw\.restore_databases".*$/mg;
is($said, 1, 'once, and nothing else complains of the setting');
if ($started)
{
	is($node->safe_psql('postgres', 'SHOW dynbgw.restore_databases'),
		'', 'it started, without the malformed list in effect');
	is($node->safe_psql('postgres', $workers_sql), '', 'nothing was restored');
	$node->stop;
}
else
{
	pass('it refused to start');
	pass('nothing was restored');
}

done_testing();

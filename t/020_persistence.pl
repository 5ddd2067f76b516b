
# Copyright (c) dynbgw authors

# Definitions that survive a restart: dynbgw_launch(..., persist => true)
# keeps them in the table dynbgw_definitions of the launching database,
# dynbgw_restore() launches them again, each as its owner with the owner's
# authority as it is now, and with dynbgw preloaded a worker does that at
# every start and crash-restart, for saved pools too.
#
# - Row security: each role sees and restores its own definitions only;
#   superusers all of them.
# - dynbgw_stop(..., forget => true) deletes a definition.
# - pg_dump leaves the definitions out and works for the database owner, a
#   member of dynbgw_user and a plain role; dynbgw_dump_definitions() moves
#   a role's definitions, replayed as that role in another database.
# - dynbgw_restore() never swallows a cancel.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

my $node = new_node('main');
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
	GRANT dynbgw_user TO alice, bob;
	CREATE TABLE ticks (who name, at timestamptz DEFAULT now());
	GRANT INSERT ON ticks TO alice, bob;});

# $sql as $role (undef: the superuser); psql's stdout, stderr on failure.
sub as_role
{
	my ($n, $role, $sql, $db) = @_;
	my ($ret, $out, $err) = $n->psql($db // 'postgres', $sql,
		extra_params => [ defined $role ? ('-U', $role) : () ]);
	return $ret == 0 ? $out : "ERROR: $err";
}

###########################################################################
# 1. Saving, and row security: alice and bob each persist a worker; each
# sees only the own definition, a superuser sees both.
###########################################################################

like(as_role($node, 'alice', q{SELECT dynbgw_launch(1, 'INSERT INTO ticks VALUES (current_user)',
                                                  naptime => '1 hour', persist => true)}),
	qr/^\d+$/, 'alice launches worker 1 and persists it');
like(as_role($node, 'bob', q{SELECT dynbgw_launch(2, 'INSERT INTO ticks VALUES (current_user)',
                                                schedule => '0 3 * * *', timezone => 'Europe/Berlin',
                                                persist => true)}),
	qr/^\d+$/, 'bob launches worker 2 on a schedule and persists it');
is(as_role($node, 'alice', 'SELECT n, owner, role FROM dynbgw_definitions ORDER BY n'),
	'1|alice|alice', 'alice sees her own definition only');
is(as_role($node, undef, 'SELECT n, owner, schedule, timezone FROM dynbgw_definitions ORDER BY n'),
	"1|alice||\n2|bob|0 3 * * *|Europe/Berlin", 'a superuser sees both');
like(as_role($node, 'alice', q{INSERT INTO dynbgw_definitions (n, owner, role)
                              VALUES (5, 'bob', 'bob')}),
	qr/permission denied to save a dynbgw definition in the name of role "bob"/,
	'alice cannot save a definition in bob\'s name');

###########################################################################
# 2. A clean restart ends the workers; dynbgw_restore() brings back what
# its caller may see: alice's own, then, for a superuser, bob's too, as
# bob.  A worker that runs is left alone.
###########################################################################

$node->restart;
registry_is($node, [], 'no worker survives a clean restart');
like(as_role($node, 'alice', 'SELECT n, pid IS NOT NULL, error FROM dynbgw_restore()'),
	qr/^1\|t\|$/, 'alice restores her worker 1');
is(as_role($node, undef, 'SELECT n, pid IS NOT NULL, error FROM dynbgw_restore() ORDER BY n'),
	"1|t|\n2|t|", 'a superuser restores both; worker 1 was running already');
is($node->safe_psql('postgres', 'SELECT n, role, schedule, timezone FROM dynbgw_workers ORDER BY n'),
	"1|alice||\n2|bob|0 3 * * *|Europe/Berlin", 'each as its owner, with its definition');
registry_is($node, [ 1, 2 ], 'after the restore');

###########################################################################
# 3. Authority as of now: after REVOKE dynbgw_user FROM alice, her
# definition is not launched again, with the reason in the error column;
# the other one is.  forget deletes a definition.
###########################################################################

$node->safe_psql('postgres', 'REVOKE dynbgw_user FROM alice');
$node->restart;
like(as_role($node, undef, 'SELECT n, pid IS NULL, error FROM dynbgw_restore() ORDER BY n'),
	qr/^1\|t\|permission denied for function dynbgw_launch\n2\|f\|$/,
	'alice may no longer launch: her definition is not restored, bob\'s is');
$node->safe_psql('postgres', 'GRANT dynbgw_user TO alice');
is(as_role($node, 'bob', 'SELECT dynbgw_stop(n => 2, forget => true)'),
	't', 'bob stops worker 2 and forgets it');
is(as_role($node, undef, 'SELECT string_agg(n::text, \',\') FROM dynbgw_definitions'),
	'1', 'only alice\'s definition is left');

###########################################################################
# 4. pg_dump works for every role that could dump the database without
# dynbgw, and carries no definition; dynbgw_dump_definitions() prints
# alice's as launches that, replayed by alice in another database, launch
# and save them there as hers.
###########################################################################

$node->safe_psql('postgres', q{
	CREATE ROLE dbo LOGIN; CREATE ROLE plain LOGIN;
	ALTER DATABASE postgres OWNER TO dbo;
	CREATE DATABASE copy});
for my $role ('dbo', 'alice', 'plain')
{
	my ($dump_out, $dump_err);
	my $ok = IPC::Run::run(
		[ 'pg_dump', '-d', $node->connstr('postgres'), '-U', $role, '-T', 'ticks' ],
		'>', \$dump_out, '2>', \$dump_err);
	ok($ok, "pg_dump as $role works") or diag $dump_err;
}
my ($stdout, $stderr);
IPC::Run::run([ 'pg_dump', '-d', $node->connstr('postgres') ],
	'|', [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('copy') ],
	'>', \$stdout, '2>', \$stderr)
  or diag $stderr;
is($node->safe_psql('copy', 'SELECT count(*) FROM dynbgw_definitions'),
	'0', 'the dump carried no definition');
my $script = as_role($node, 'alice', 'SELECT * FROM dynbgw_dump_definitions()');
like($script, qr/^SELECT dynbgw_launch\(1, 'INSERT INTO ticks VALUES \(current_user\)', naptime => '01:00:00', database => NULL, role => NULL, .*persist => true\);$/,
	'dynbgw_dump_definitions() prints alice\'s launch');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)');
like(as_role($node, 'alice', $script, 'copy'), qr/^\d+$/, 'alice replays it in the copy');
is($node->safe_psql('copy', 'SELECT n, owner, database IS NULL FROM dynbgw_definitions'),
	"1|alice|t", 'the copy has the definition, as alice\'s, for its own database');
is($node->safe_psql('postgres', 'SELECT database, role FROM dynbgw_workers WHERE n = 1'),
	"copy|alice", 'and its worker runs in the copy');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)');

###########################################################################
# 5. A cancel is never swallowed: a restore whose launch waits (its worker
# blocks connecting to a database that another session renames in an open
# transaction) ends at statement_timeout with 57014, not with an error row.
###########################################################################

$node->safe_psql('postgres', q{
	DELETE FROM dynbgw_definitions;
	CREATE DATABASE blocked;
	SELECT dynbgw_launch(6, naptime => '1 hour', database => 'blocked', persist => true);
	SELECT dynbgw_stop(n => 6);});
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; ALTER DATABASE blocked RENAME TO blocked_now');
my ($ret, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '1s'; SELECT n, pid, error FROM dynbgw_restore() ORDER BY n",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'the restore was cancelled');
like($err, qr/57014: canceling statement due to statement timeout/,
	'by statement_timeout, which it did not catch');
$holder->query_safe('ROLLBACK');
$holder->quit;
registry_is($node, [], 'the cancelled launch left nothing');

# Without a cancel, the blocked launch is given up after 10 seconds and the
# rows after it are restored; a launch whose worker another session stops
# meanwhile is that row's error too, not the end of the call.
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(7, naptime => '1 hour', persist => true), dynbgw_stop(n => 7)});
$holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; ALTER DATABASE blocked RENAME TO blocked_now');
my $t0 = time();
is($node->safe_psql('postgres', 'SELECT n, pid IS NOT NULL, error FROM dynbgw_restore() ORDER BY n'),
	"6|f|dynbgw worker 6 did not start within 10 seconds\n7|t|",
	'a worker that does not start in 10 seconds is reported, the next row restored');
ok(time() - $t0 < 30, 'the restore took about 10 seconds');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 7)');
my $restoring = $node->background_psql('postgres', on_error_stop => 0);
$restoring->query_until(qr/restoring/,
	"\\echo restoring\nSELECT n, pid IS NOT NULL, error FROM dynbgw_restore() ORDER BY n;\n");
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM dynbgw_workers WHERE n = 6 AND state = 'starting'}),
	'worker 6 is starting, blocked');
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 6)'), 't', 'and is stopped');
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while ($restoring->{stdout} !~ /^7\|/m && time() < $deadline)
{
	$restoring->{run}->pump_nb();
	Time::HiRes::usleep(50_000);
}
like($restoring->{stdout}, qr/^6\|f\|dynbgw worker 6 was stopped before it was ready\n7\|t\|$/m,
	'the stopped launch is that row\'s error; the call goes on');
bg_end($restoring);
$holder->query_safe('ROLLBACK');
$holder->quit;
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 7)');
$node->safe_psql('postgres', 'DELETE FROM dynbgw_definitions');

# A database owner's operator on a superuser's search_path is never what
# forget's query uses.
$node->safe_psql('postgres', 'CREATE DATABASE owned OWNER dbo');
$node->safe_psql('owned', 'CREATE EXTENSION dynbgw');
$node->safe_psql('owned', q{
	SET ROLE dbo;
	CREATE FUNCTION public.evil_eq(a int, b int) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
	    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
	        EXECUTE 'ALTER ROLE dbo SUPERUSER';
	    END IF;
	    RETURN a OPERATOR(pg_catalog.=) b;
	END $$;
	CREATE OPERATOR public.= (leftarg = int, rightarg = int, function = public.evil_eq);
	ALTER DATABASE owned SET search_path = public, pg_catalog;});
$node->psql('owned', 'SELECT dynbgw_stop(n => 1, forget => true)');
$node->psql('owned', q{SELECT dynbgw_launch(1, naptime => '1 hour', persist => true); SELECT dynbgw_stop(n => 1, forget => true)});
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbo'}),
	'f', 'a superuser\'s save and forget never ran the database owner\'s operator');
log_is_clean($node);
$node->stop;

###########################################################################
# 6. Preloaded, with dynbgw.restore_databases: the definitions come back by
# themselves after a restart and after a crash-restart.
###########################################################################

my $pre = PostgreSQL::Test::Cluster->new('preload');
$pre->init;
$pre->append_conf('postgresql.conf', q{
shared_preload_libraries = 'dynbgw'
dynbgw.restore_databases = 'postgres'
restart_after_crash = on
autovacuum = off
max_worker_processes = 16});
$pre->start;
$pre->safe_psql('postgres', 'CREATE EXTENSION dynbgw');
like($pre->safe_psql('postgres',
		q{SELECT dynbgw_launch(3, 'SELECT 1', naptime => '1 hour', persist => true)}),
	qr/^\d+$/, 'worker 3 launched and persisted on a preloaded server');
$pre->safe_psql('postgres', q{SELECT dynbgw_pool_create('saved', 2, persist => true)});
# From the start on: a session that the shutdown ends may log a FATAL.
$pre->stop;
my $pre_offset = -s $pre->logfile;
$pre->start;
# Read from the log, before any session connects: the restore needs none.
$pre->wait_for_log(qr/dynbgw worker 3 of database "postgres" restored, PID \d+/, $pre_offset);
pass('worker 3 is restored after a restart, before any client connected');
unlike(slurp_file($pre->logfile, $pre_offset), qr/FATAL/, 'with no FATAL on the way');
ok($pre->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM dynbgw_workers WHERE n = 3 AND pid IS NOT NULL"),
	'worker 3 is back after a restart, by itself');
$pre->wait_for_log(qr/dynbgw worker \d+ of pool "saved" of database "postgres" restored, PID \d+/, $pre_offset);
ok($pre->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM dynbgw_workers WHERE pool = 'saved' AND pid IS NOT NULL"),
	'and so is the saved pool, with both its workers');
is($pre->safe_psql('postgres',
		"SELECT outcome FROM dynbgw_wait_task(dynbgw_submit('saved', 'SELECT 1'), '60 s')"),
	'succeeded', 'which runs tasks');
$pre->safe_psql('postgres', "SELECT dynbgw_pool_drop('saved', forget => true)");
my $victim = $pre->safe_psql('postgres', "SELECT dynbgw_launch(4, naptime => '1 hour')");
my $offset = -s $pre->logfile;
kill('KILL', $victim);
wait_crash_restart($pre, $offset);
ok($pre->poll_query_until('postgres',
		"SELECT string_agg(n::text, ',') = '3' FROM dynbgw_workers WHERE pid IS NOT NULL"),
	'worker 3 is back after a crash-restart, worker 4 (not persisted) is not');
$pre->stop;

done_testing();


# Copyright (c) dynbgw authors

# Pools where their workers die, are dropped or crash, and where tasks
# flood in or lose their right to run (sql/pools.sql shows the rest).
#
# - A worker that dies in a task (FATAL) ends the task as failed with its
#   error, and the pool is back at its size a second later.
# - A drop while tasks run and wait stops the workers: running and
#   waiting tasks end as stopped, and no process or pool is left.
# - After a crash-restart the pool's workers are back and remake their
#   pool, which takes tasks again.
# - Sessions that submit more than the queue holds, waiting for room, all
#   get their tasks run, each once.
# - A task whose submitter lost the pool's role while it waited fails
#   with 42501, and the pool goes on; a pool whose maker lost the role
#   fails, and so do its waiting tasks; it takes no more.  A task whose
#   submitter was dropped fails with 42704; a submission from a parallel
#   worker is refused.
# - A superuser's pool takes no task from a role that is not one.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('main', conf => 'restart_after_crash = on');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# Task $id once it ended, as "outcome sqlstate".
sub ended
{
	my ($id) = @_;
	return q1(
		"SELECT outcome || ' ' || coalesce(sqlstate, '-') FROM dynbgw_wait_task($id, '60 s')"
	);
}

sub pool_pids
{
	my ($pool) = @_;
	return q1(
		"SELECT string_agg(pid::text, ' ' ORDER BY n) FROM dynbgw_workers WHERE pool = '$pool' AND pid IS NOT NULL"
	);
}

###########################################################################
# 1. A worker that dies in a task.

q1("SELECT dynbgw_pool_create('p', 2)");
my $before = pool_pids('p');
my $fatal = q1(
	"SELECT dynbgw_submit('p', 'SET exit_on_error = on; SELECT 1/0')");
is(ended($fatal), 'failed 22012', 'a task that ends its worker failed');
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2 FROM dynbgw_workers WHERE pool = 'p' AND state = 'idle'"
	),
	'the pool is back at its size');
isnt(pool_pids('p'), $before, 'with a new worker in place of the one that died');
is(ended(q1("SELECT dynbgw_submit('p', 'SELECT 1')")),
	'succeeded -', 'and takes tasks again');

###########################################################################
# 2. A drop while tasks run and wait.

my @running =
  map { q1("SELECT dynbgw_submit('p', 'SELECT pg_sleep(300)')") } 1 .. 2;
my @waiting =
  map { q1("SELECT dynbgw_submit('p', 'SELECT pg_sleep(300)')") } 1 .. 3;
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2 FROM dynbgw_tasks WHERE state = 'running'"),
	'two tasks run, three wait');
is(q1("SELECT dynbgw_pool_drop('p', '60 s')"), 't', 'the pool is dropped');
is(ended($_), 'stopped -', "running task $_ was stopped") for @running;
is(ended($_), 'stopped -', "waiting task $_ was stopped") for @waiting;
is(q1('SELECT count(*) FROM dynbgw_workers'), '0', 'no worker is left');
is(q1('SELECT count(*) FROM dynbgw_pools'), '0', 'nor the pool');
is(dynbgw_processes($node), 0, 'nor a process');

###########################################################################
# 3. A crash-restart.

q1("SELECT dynbgw_pool_create('q', 2, queue_size => 50)");
my $victim = q1("SELECT dynbgw_launch(1, naptime => '1 hour')");
my $offset = -s $node->logfile;
ok(kill('KILL', $victim), 'kill -9 another worker');
wait_crash_restart($node, $offset);
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2 FROM dynbgw_workers WHERE pool = 'q' AND state = 'idle'"
	),
	'the pool\'s workers are back');
is(q1("SELECT name || ' ' || size || ' ' || queue_size FROM dynbgw_pools"),
	'q 2 50', 'and remade their pool');
is(ended(q1("SELECT dynbgw_submit('q', 'SELECT 1')")),
	'succeeded -', 'which takes tasks');

###########################################################################
# 4. A flood: two sessions submit 200 tasks each to a queue of 5.

q1("SELECT dynbgw_pool_drop('q')");
q1("SELECT dynbgw_pool_create('f', 2, queue_size => 5)");
q1('CREATE TABLE flood (session integer, i integer)');
my @floods = map { $node->background_psql('postgres') } 1 .. 2;
for my $s (1 .. 2)
{
	$floods[ $s - 1 ]->query_until(
		qr/start/, qq{\\echo start
DO \$\$
BEGIN
    FOR i IN 1..200 LOOP
        PERFORM dynbgw_submit('f', format('INSERT INTO flood VALUES ($s, %s)', i),
                              wait_for_slot => '60 s');
    END LOOP;
END
\$\$;
});
}
ok( $node->poll_query_until('postgres', 'SELECT count(*) = 400 FROM flood'),
	'every task of both sessions ran');
is(q1('SELECT count(DISTINCT (session, i)) FROM flood'),
	'400', 'each once');
is(q1("SELECT queued FROM dynbgw_pools WHERE name = 'f'"),
	'0', 'and nothing is left waiting');
$_->quit for @floods;
q1("SELECT dynbgw_pool_drop('f')");

###########################################################################
# 5. Rights lost while tasks wait.

q1(
	q{CREATE ROLE pool_role LOGIN;
	  CREATE ROLE pool_maker LOGIN IN ROLE dynbgw_user;
	  CREATE ROLE pool_submitter LOGIN;
	  GRANT pool_role TO pool_maker, pool_submitter;
	  GRANT CREATE ON SCHEMA public TO pool_role});
$node->safe_psql('postgres',
	"SET ROLE pool_maker; SELECT dynbgw_pool_create('r', 1, role => 'pool_role')"
);
# A session that holds the lock the pool's worker waits for.
my $holder = $node->background_psql('postgres');
$holder->query_safe('SELECT pg_advisory_lock(7)');
my $blocker =
  q1("SELECT dynbgw_submit('r', 'SELECT pg_advisory_xact_lock(7)')");
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'running' FROM dynbgw_tasks WHERE id = $blocker"),
	'the pool\'s worker is busy');
my $revoked = $node->safe_psql('postgres',
	"SET ROLE pool_submitter; SELECT dynbgw_submit('r', 'SELECT 1')");
q1('REVOKE pool_role FROM pool_submitter');
$holder->query_safe('SELECT pg_advisory_unlock(7)');
is(ended($revoked), 'failed 42501',
	'a task whose submitter lost the role fails');
is(ended(q1("SELECT dynbgw_submit('r', 'SELECT 1')")),
	'succeeded -', 'and the pool goes on');

$holder->query_safe('SELECT pg_advisory_lock(7)');
$blocker =
  q1("SELECT dynbgw_submit('r', 'SELECT pg_advisory_xact_lock(7)')");
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'running' FROM dynbgw_tasks WHERE id = $blocker"),
	'the pool\'s worker is busy again');
my $orphan = q1("SELECT dynbgw_submit('r', 'SELECT 1')");
q1('REVOKE pool_role FROM pool_maker');
$holder->query_safe('SELECT pg_advisory_unlock(7)');
$holder->quit;
is(ended($orphan), 'failed 42501',
	'a pool whose maker lost its role fails its waiting tasks');
is(q1("SELECT state FROM dynbgw_pools WHERE name = 'r'"),
	'failed', 'the pool says it failed');
like(
	psql_error($node, "SELECT dynbgw_submit('r', 'SELECT 1')"),
	qr/ERROR:  55000: dynbgw pool "r" takes no more tasks/,
	'and takes no more');
is(q1("SELECT dynbgw_pool_drop('r')"), 't', 'a failed pool is dropped');

# A task whose submitter was dropped while it waited fails (42704).
q1('CREATE ROLE pool_gone LOGIN; GRANT pool_role TO pool_gone');
q1("SELECT dynbgw_pool_create('g', 1, role => 'pool_role')");
$holder = $node->background_psql('postgres');
$holder->query_safe('SELECT pg_advisory_lock(6)');
$blocker = q1("SELECT dynbgw_submit('g', 'SELECT pg_advisory_xact_lock(6)')");
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'running' FROM dynbgw_tasks WHERE id = $blocker"),
	'the g pool\'s worker is busy');
my $orphaned = $node->safe_psql('postgres',
	"SET ROLE pool_gone; SELECT dynbgw_submit('g', 'SELECT 1')");
q1('DROP ROLE pool_gone');
$holder->query_safe('SELECT pg_advisory_unlock(6)');
$holder->quit;
is(ended($orphaned), 'failed 42704',
	'a task whose submitter was dropped while it waited fails');
q1("SELECT dynbgw_pool_drop('g')");

# Submitting from a parallel worker is refused: its commit is not its
# transaction's.
q1(q{CREATE FUNCTION submit_safe(pool text) RETURNS bigint LANGUAGE plpgsql
	PARALLEL SAFE AS 'BEGIN RETURN dynbgw_submit(pool, ''SELECT 1''); END'});
my $force = server_major($node) >= 16 ? 'debug_parallel_query' : 'force_parallel_mode';
my ($prc, $pout, $perr) = $node->psql('postgres',
	"SELECT dynbgw_pid(1) IS NULL; SET $force = on; SET parallel_leader_participation = off;
	 SELECT submit_safe('r')");
like($perr, qr/cannot submit a dynbgw task from a parallel worker/,
	'a submission from a parallel worker is refused');

# As many pools as worker numbers (dynbgw.max_workers, 8): a pool more is
# refused (53400) before it takes any.
is(q1(q{SELECT count(*) FROM (SELECT dynbgw_pool_create('many_' || i, 1, queue_size => 1)
                              FROM generate_series(1, 8) i) m}),
	'8', 'eight pools of one worker each');
like(
	psql_error($node, "SELECT dynbgw_pool_create('many_9', 1, queue_size => 1)"),
	qr/ERROR:  53400: too many dynbgw pools/,
	'a ninth is refused');
is(q1(q{SELECT bool_and(dynbgw_pool_drop(name)) FROM dynbgw_pools WHERE name LIKE 'many_%'}),
	't', 'and the eight are dropped');

###########################################################################
# 6. A superuser's pool is for superusers.

q1("SELECT dynbgw_pool_create('su', 1)");
q1('GRANT postgres TO pool_submitter');
like(
	psql_error(
		$node,
		"SET ROLE pool_submitter; SELECT dynbgw_submit('su', 'SELECT 1')"),
	qr/ERROR:  42501: permission denied to submit tasks to dynbgw pool "su"/,
	'a member of a superuser role submits nothing to its pool');
q1('REVOKE postgres FROM pool_submitter');
q1("SELECT dynbgw_pool_drop('su')");

###########################################################################
# 7. Pools of another database: who may not connect there runs nothing
#    there, also once revoked while a task waits; a saved pool is forgotten
#    from the database it was made from only.

q1(
	q{CREATE DATABASE other;
	  CREATE ROLE far LOGIN;
	  CREATE ROLE near LOGIN NOINHERIT;
	  GRANT far TO near;
	  REVOKE CONNECT ON DATABASE other FROM PUBLIC;
	  GRANT CONNECT ON DATABASE other TO far;
	  GRANT dynbgw_user TO far});
$node->safe_psql('other', 'CREATE EXTENSION dynbgw');
$node->safe_psql('other',
	"SET ROLE far; SELECT dynbgw_pool_create('far', 1, persist => true)");
like(
	psql_error(
		$node, "SET ROLE near; SELECT dynbgw_submit('far', 'SELECT 1')"),
	qr/ERROR:  42501: permission denied for database other/,
	'a member of the pool\'s role without CONNECT on its database submits nothing');
q1('GRANT CONNECT ON DATABASE other TO near');
# Advisory locks are per database: the holder is in the pool's.
$holder = $node->background_psql('other');
$holder->query_safe('SELECT pg_advisory_lock(8)');
$blocker = q1("SELECT dynbgw_submit('far', 'SELECT pg_advisory_xact_lock(8)')");
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'running' FROM dynbgw_tasks WHERE id = $blocker"),
	'the far pool\'s worker is busy');
my $unconnected = $node->safe_psql('postgres',
	"SET ROLE near; SELECT dynbgw_submit('far', 'SELECT 1')");
q1('REVOKE CONNECT ON DATABASE other FROM near');
$holder->query_safe('SELECT pg_advisory_unlock(8)');
$holder->quit;
is(ended($unconnected), 'failed 42501',
	'a task whose submitter lost CONNECT while it waited fails');
like(
	psql_error($node, "SELECT dynbgw_pool_drop('far', forget => true)"),
	qr/ERROR:  55000: dynbgw pool "far" was made from another database/,
	'a saved pool is not forgotten from another database');
is($node->safe_psql('other', 'SELECT count(*) FROM dynbgw_pool_definitions'),
	'1', 'its saved definition stays');
is($node->safe_psql('other', "SELECT dynbgw_pool_drop('far', forget => true)"),
	't', 'and is forgotten from its own');
is($node->safe_psql('other', 'SELECT count(*) FROM dynbgw_pool_definitions'),
	'0', 'where it is gone');

###########################################################################
# 8. A pool whose workers are all stopped one by one fails: the task that
#    waited fails, and the pool takes no more.  Another session's task
#    whose transaction has yet to commit is not known to others.

q1("SELECT dynbgw_pool_create('s', 1)");
$holder = $node->background_psql('postgres');
$holder->query_safe('SELECT pg_advisory_lock(9)');
$blocker = q1("SELECT dynbgw_submit('s', 'SELECT pg_advisory_xact_lock(9)')");
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'running' FROM dynbgw_tasks WHERE id = $blocker"),
	'the s pool\'s worker is busy');
my $behind = q1("SELECT dynbgw_submit('s', 'SELECT 1')");
is(q1("SELECT dynbgw_stop(n => (SELECT n FROM dynbgw_workers WHERE pool = 's'))"),
	't', 'its only worker is stopped');
is(ended($blocker), 'stopped -', 'the task it ran was stopped');
is(ended($behind), 'failed 57P01', 'the task that waited failed');
is(q1("SELECT state FROM dynbgw_pools WHERE name = 's'"),
	'failed', 'the pool failed');
like(
	psql_error($node, "SELECT dynbgw_submit('s', 'SELECT 1')"),
	qr/ERROR:  55000: dynbgw pool "s" takes no more tasks/,
	'and takes no more');
q1("SELECT dynbgw_pool_drop('s')");

q1("SELECT dynbgw_pool_create('t', 1)");
$holder->query_safe('SELECT pg_advisory_unlock(9)');
$holder->query_safe('BEGIN');
my $uncommitted = $holder->query_safe("SELECT dynbgw_submit('t', 'SELECT 1')");
like(
	psql_error($node, "SELECT * FROM dynbgw_wait_task($uncommitted, '0')"),
	qr/ERROR:  42704: dynbgw task $uncommitted does not exist/,
	'a task whose transaction has yet to commit is not known to others');
like(
	psql_error($node, "SELECT dynbgw_cancel_task($uncommitted)"),
	qr/ERROR:  42704: dynbgw task $uncommitted does not exist/,
	'nor cancelled by them');
$holder->query_safe('COMMIT');
is(ended($uncommitted), 'succeeded -', 'committed, it runs');
$holder->quit;
q1("SELECT dynbgw_pool_drop('t')");

###########################################################################
# 9. Pool workers in the PGPROCs of entry points that were stopped in
#    their latch wait (a FATAL from the signal handler leaves the latch
#    marked as sleeping): every PGPROC of a background worker is so used
#    first, then a pool's workers start in them and take tasks (assertion-
#    enabled servers checked the latch before the fix).

my $offset9 = -s $node->logfile;
for (1 .. 40)
{
	q1("SELECT dynbgw_launch_function(1, 'dynbgw', 'dynbgw_sleep_main')");
	q1('SELECT dynbgw_stop(n => 1)');
}
q1("SELECT dynbgw_pool_create('v', 8)");
is( q1(
		"SELECT string_agg(outcome, ',') FROM (SELECT (dynbgw_wait_task(dynbgw_submit('v', 'SELECT 1'), '60 s')).outcome FROM generate_series(1, 8)) t"
	),
	join(',', ('succeeded') x 8),
	'pool workers in such PGPROCs run tasks');
unlike(slurp_file($node->logfile, $offset9),
	qr/TRAP|terminated by signal/, 'and nothing failed an assertion');
q1("SELECT dynbgw_pool_drop('v')");

###########################################################################
# 10. A wait for a task whose record left the history of ended tasks
#     (dynbgw.history_size, 1000 here) still says how it ended.

q1("SELECT dynbgw_pool_create('w', 2)");
my ($first, $last) = split /\|/, q1(q{
	SELECT min(id), max(id) FROM (
	    SELECT dynbgw_submit('w', 'SELECT 1', wait_for_slot => '60 s') AS id
	    FROM generate_series(1, 1100)) t});
is(ended($last), 'succeeded -', '1100 tasks ran');
is(q1("SELECT count(*) FROM dynbgw_tasks WHERE id = $first"),
	'0', 'the first is no longer in the history');
is(q1("SELECT state || ' ' || outcome || ' ' || (pool IS NULL) FROM dynbgw_wait_task($first, '0')"),
	'ended succeeded true', 'but a wait for it says how it ended, without the rest');
q1("SELECT dynbgw_pool_drop('w')");

###########################################################################
# 11. A worker woken for a task that exits before it takes it (stopped
#     while it was not running) passes the wake on to another: the task
#     runs on the pool's other worker.

q1("SELECT dynbgw_pool_create('lw', 2)");
my ($woken, $other) = split /\n/,
  q1("SELECT pid FROM dynbgw_workers WHERE pool = 'lw' ORDER BY n");
# Submissions wake the waiting worker of the lowest number.
ok(kill('STOP', $woken), 'the worker a submission wakes is held');
my $stranded = q1("SELECT dynbgw_submit('lw', 'SELECT 42')");
q1("SELECT pg_terminate_backend($woken)");
ok(kill('CONT', $woken), 'stopped meanwhile, it goes on, to exit');
is(q1("SELECT outcome || ' ' || worker FROM dynbgw_wait_task($stranded, '60 s')"),
	'succeeded ' . q1("SELECT n FROM dynbgw_workers WHERE pid = $other"),
	'its task ran on the other worker');
q1("SELECT dynbgw_pool_drop('lw')");

$node->stop;
done_testing();

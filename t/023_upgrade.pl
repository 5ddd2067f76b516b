
# Copyright (c) dynbgw authors

# Upgrades are the users': ALTER EXTENSION dynbgw UPDATE keeps every grant
# a DBA made and never ends a running worker.
#
# - From 1.0, through 1.1, 1.1.1, 1.2 and 1.3, to 1.4: direct EXECUTE grants on dynbgw_launch
#   and dynbgw_stop, a revoke from dynbgw_user and a revoke from PUBLIC on
#   dynbgw_workers survive the functions and views made anew; workers
#   launched under a direct grant and under dynbgw_user keep running;
#   pg_dump still writes out the DBA's grants; and the users' views on the
#   views dynbgw_workers and dynbgw_runs stay, with their grants.
# - From 1.1 to 1.1.1, saved definitions keep their meaning, and the DBA's
#   grants on their table stay in dumps: owner and role
#   by OID, the launching database as "this database", another database by
#   OID; rows of roles that no longer exist are deleted with a warning; the
#   table leaves pg_dump's configuration tables.
# - From 1.1.1 to 1.2: grants on the functions and views made anew
#   (dynbgw_launch, dynbgw_workers, dynbgw_runs) survive and stay in dumps;
#   a worker launched before keeps its authority; the new library with the
#   old SQL saves, restores and reports; saved rows gain retry columns;
#   the users' views on dynbgw_workers and dynbgw_runs stay.
# - From 1.2 to 1.3: the same for dynbgw_launch and dynbgw_workers, made
#   anew; saved rows gain keep_result; the worker runs on; a launch after
#   the update keeps its result.
# - From 1.3 to 1.4: the same for dynbgw_workers, dynbgw_results and
#   dynbgw_restore, made anew; the worker runs on; pools can be made,
#   saved, dumped and restored after the update.
# - A user's view on the function dynbgw_workers() itself blocks the update
#   with the plain dependency error and leaves 1.1.1 whole; dropped and made
#   again around the update, in one transaction, it lets the update through.
# - A superuser who made the extension, demoted before another updates it,
#   keeps no EXECUTE on the functions made anew.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "max_worker_processes = 16");
$node->start;

###########################################################################
# 1. 1.0 -> 1.1 -> 1.4 with a DBA's grants and running workers.
###########################################################################

$node->safe_psql('postgres', q{
	CREATE EXTENSION dynbgw VERSION '1.0';
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN;
	GRANT dynbgw_user TO bob;
	GRANT EXECUTE ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval) TO alice;
	GRANT EXECUTE ON FUNCTION dynbgw_stop(integer, interval, integer) TO alice;
	REVOKE EXECUTE ON FUNCTION dynbgw_stop(integer, interval, integer) FROM dynbgw_user;
	REVOKE SELECT ON dynbgw_workers FROM PUBLIC;
	GRANT SELECT ON dynbgw_workers TO carol;
	CREATE TABLE ticks (who name);
	GRANT INSERT ON ticks TO alice, bob;
	CREATE VIEW worker_pids AS SELECT n, pid FROM dynbgw_workers;
	CREATE VIEW all_workers AS SELECT * FROM dynbgw_workers;
	GRANT SELECT ON worker_pids TO alice;});

like($node->safe_psql('postgres',
		q{SET ROLE alice; SELECT dynbgw_launch(1, 'INSERT INTO ticks VALUES (current_user)', '100 ms')}),
	qr/^\d+$/, 'alice launches worker 1 under her direct grant');
like($node->safe_psql('postgres',
		q{SET ROLE bob; SELECT dynbgw_launch(2, 'INSERT INTO ticks VALUES (current_user)', '100 ms')}),
	qr/^\d+$/, 'bob launches worker 2 as a member of dynbgw_user');
my $pids = $node->safe_psql('postgres', 'SELECT string_agg(pid::text, \',\' ORDER BY n) FROM dynbgw_workers');

$node->safe_psql('postgres', "ALTER EXTENSION dynbgw UPDATE TO '1.1'");
$node->safe_psql('postgres', q{
	CREATE VIEW run_ends AS SELECT n, finished, status FROM dynbgw_runs;
	CREATE VIEW all_runs AS SELECT * FROM dynbgw_runs;
	GRANT SELECT ON run_ends TO alice;});
$node->safe_psql('postgres', 'ALTER EXTENSION dynbgw UPDATE');
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'dynbgw'}),
	'1.4', 'updated to 1.4');

my $launch = 'dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval, boolean)';
my $launch_12 = 'dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval)';
my $stop = 'dynbgw_stop(integer, interval, integer, boolean)';
is($node->safe_psql('postgres', qq{
	SELECT has_function_privilege('alice', '$launch', 'EXECUTE'),
	       has_function_privilege('alice', '$stop', 'EXECUTE'),
	       has_function_privilege('bob', '$launch', 'EXECUTE'),
	       has_function_privilege('bob', '$stop', 'EXECUTE'),
	       has_table_privilege('carol', 'dynbgw_workers', 'SELECT'),
	       has_table_privilege('bob', 'dynbgw_workers', 'SELECT')}),
	't|t|t|f|t|f', 'the grants and revokes of the DBA survived both updates');

# The users' views on the views stay, with their columns and grants; the
# views of the extension have their new columns, at the end.
my $workers_columns = 'n,pid,kind,state,database,role,command,naptime,runs,failures,'
  . 'last_error,launched_at,launched_by_pid,last_started,last_finished,'
  . 'last_duration,next_run,max_runs,restart,last_result,schedule,timezone,'
  . 'last_trigger,retry,retry_delay,keep_result,pool';
my $columns_sql = q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = '%s'::regclass AND attnum > 0 AND NOT attisdropped};
is($node->safe_psql('postgres', sprintf($columns_sql, 'dynbgw_workers')),
	$workers_columns, 'dynbgw_workers has its 27 columns in order');
is($node->safe_psql('postgres', sprintf($columns_sql, 'all_workers')),
	join(',', (split /,/, $workers_columns)[0 .. 18]),
	'a user\'s SELECT * view of 1.0 keeps its 19 columns');
is($node->safe_psql('postgres', q{SET ROLE alice; SELECT string_agg(n || ':' || pid, ',' ORDER BY n) FROM worker_pids}),
	join(',', map { ($_ + 1) . ":" . (split /,/, $pids)[$_] } 0 .. 1),
	'alice still reads the running workers through her grant on a user\'s view');
is($node->safe_psql('postgres', q{SELECT string_agg(n || ':' || role, ',' ORDER BY n) FROM all_workers WHERE pid IS NOT NULL}),
	'1:alice,2:bob', 'and the SELECT * view shows them');
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM all_runs WHERE n = 1 AND status = 'succeeded') > 0
	   AND (SELECT count(*) FROM run_ends WHERE n = 2 AND status = 'succeeded') > 0}),
	'the users\' views on dynbgw_runs show the runs');
is($node->safe_psql('postgres', q{
	SELECT has_table_privilege('alice', 'run_ends', 'SELECT'),
	       has_table_privilege('alice', 'all_runs', 'SELECT')}),
	't|f', 'and keep their grants');

# The workers go on: the same processes, and each inserts again.
is($node->safe_psql('postgres', 'SELECT string_agg(pid::text, \',\' ORDER BY n) FROM dynbgw_workers'),
	$pids, 'workers 1 and 2 still run, as the same processes');
my $ticks = $node->safe_psql('postgres',
	q{SELECT count(*) FILTER (WHERE who = 'alice') || ',' || count(*) FILTER (WHERE who = 'bob') FROM ticks});
my ($alice_before, $bob_before) = split /,/, $ticks;
ok( $node->poll_query_until('postgres', qq{
	SELECT count(*) FILTER (WHERE who = 'alice') > $alice_before + 3
	   AND count(*) FILTER (WHERE who = 'bob') > $bob_before + 3 FROM ticks}),
	'both keep running after the updates');
unlike(slurp_file($node->logfile), qr/lost the authority/,
	'no worker lost its authority');

like($node->safe_psql('postgres',
		q{SET ROLE alice; SELECT dynbgw_launch(3, naptime => '1 hour')}),
	qr/^\d+$/, 'alice still launches with her direct grant');
is($node->safe_psql('postgres', q{SET ROLE alice; SELECT dynbgw_stop(n => 3)}),
	't', 'and stops');

# pg_dump writes out what the DBA changed, as without an update.
my ($dump, $dump_err);
IPC::Run::run([ 'pg_dump', '-s', '-d', $node->connstr('postgres') ],
	'>', \$dump, '2>', \$dump_err)
  or diag $dump_err;
like($dump, qr/GRANT ALL ON FUNCTION public\.dynbgw_launch\(.*\) TO alice;/,
	'pg_dump carries the grant to alice');
like($dump, qr/REVOKE ALL ON FUNCTION public\.dynbgw_stop\(.*\) FROM dynbgw_user;/,
	'and the revoke from dynbgw_user');
like($dump, qr/REVOKE SELECT ON TABLE public\.dynbgw_workers FROM PUBLIC;/,
	'and the revoke from PUBLIC');

$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1), dynbgw_stop(n => 2)');

###########################################################################
# 2. 1.1 -> 1.1.1 with saved definitions.
###########################################################################

$node->safe_psql('postgres', q{
	CREATE DATABASE app; CREATE DATABASE other;
	CREATE ROLE ghost});
$node->safe_psql('app', q{
	CREATE EXTENSION dynbgw VERSION '1.1';
	CREATE ROLE mon;
	GRANT SELECT ON dynbgw_definitions TO mon;
	REVOKE DELETE ON dynbgw_definitions FROM dynbgw_user;});
# As 1.1 wrote them: names, and the launching database's own name.
$node->safe_psql('app', q{
	INSERT INTO dynbgw_definitions (n, owner, naptime, database, role) VALUES
	    (4, 'bob', '1 hour', 'app', 'bob'),
	    (5, 'bob', '1 hour', 'other', 'bob'),
	    (6, 'ghost', '1 hour', 'app', 'ghost')});
$node->safe_psql('postgres', 'DROP ROLE ghost');

# The new library with the old SQL: saving, forgetting and restoring wait
# for the update, with a clear error.
for my $sql (q{SELECT dynbgw_launch(7, naptime => '1 hour', persist => true)},
	q{SELECT dynbgw_stop(n => 7, forget => true)},
	q{SELECT * FROM dynbgw_restore()})
{
	my ($r, $o, $e) = $node->psql('app', "\\set VERBOSITY verbose\n$sql");
	like($e, qr/ERROR:  55000: saved dynbgw definitions need version 1\.1\.1 of the extension/,
		"before the update: $sql fails with 55000");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'), '0',
	'and nothing was launched');
is($node->safe_psql('app', q{SELECT count(*) FROM pg_extension WHERE extname = 'dynbgw' AND extconfig IS NOT NULL}),
	'1', 'in 1.1 the table is a configuration table');

my ($ret, $out, $err) = $node->psql('app', 'ALTER EXTENSION dynbgw UPDATE');
is($ret, 0, 'updated from 1.1 with definitions saved');
like($err, qr/deleted 1 saved dynbgw definitions whose role or database no longer exists/,
	'a warning counts the row of the dropped role');
is($node->safe_psql('app', q{
	SELECT string_agg(n || ':' || owner || ':' || role || ':' || coalesce((SELECT datname FROM pg_database WHERE oid = database), 'this'), ',' ORDER BY n)
	FROM dynbgw_definitions}),
	'4:bob:bob:this,5:bob:bob:other', 'owner and role by OID, this database as NULL, another by OID');
is($node->safe_psql('app', q{SELECT count(*) FROM pg_extension WHERE extname = 'dynbgw' AND extconfig IS NOT NULL}),
	'0', 'the table is no longer a configuration table');
my ($app_dump, $app_err);
IPC::Run::run([ 'pg_dump', '-s', '-d', $node->connstr('app') ], '>', \$app_dump, '2>', \$app_err)
  or diag $app_err;
like($app_dump, qr/GRANT SELECT ON TABLE public\.dynbgw_definitions TO mon;/,
	'pg_dump still carries the DBA\'s grant on the table');
like($app_dump, qr/GRANT SELECT,INSERT,UPDATE ON TABLE public\.dynbgw_definitions TO dynbgw_user;/,
	'and the revoke of DELETE from dynbgw_user');
is($node->safe_psql('app', 'SELECT n, pid IS NOT NULL, error FROM dynbgw_restore() ORDER BY n'),
	"4|t|\n5|t|", 'both definitions restore');
is($node->safe_psql('postgres', q{SELECT string_agg(n || ':' || database || ':' || role, ',' ORDER BY n) FROM dynbgw_workers}),
	'4:app:bob,5:other:bob', 'each where it was saved for, as bob');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 4), dynbgw_stop(n => 5)');

###########################################################################
# 3. 1.1.1 -> 1.2 -> 1.3 with a DBA's grants, a running worker and saved
#    rows.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE v111');
my $launch_111 = 'dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean)';
$node->safe_psql('v111', qq{
	CREATE EXTENSION dynbgw VERSION '1.1.1';
	CREATE ROLE dave LOGIN;
	GRANT EXECUTE ON FUNCTION $launch_111 TO dave;
	GRANT SELECT, INSERT, UPDATE, DELETE ON dynbgw_definitions TO dave;
	GRANT EXECUTE ON FUNCTION dynbgw_dump_definitions() TO dave;
	REVOKE SELECT ON dynbgw_runs FROM PUBLIC;
	GRANT SELECT ON dynbgw_runs TO carol;
	REVOKE EXECUTE ON FUNCTION dynbgw_workers() FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION dynbgw_workers() TO carol, dave;
	CREATE TABLE ticks (who name);
	GRANT INSERT ON ticks TO dave;
	REVOKE SELECT ON dynbgw_workers FROM PUBLIC;
	GRANT SELECT ON dynbgw_workers TO dave;
	CREATE VIEW worker_runs AS SELECT n, role, runs FROM dynbgw_workers;
	CREATE VIEW all_workers AS SELECT * FROM dynbgw_workers;
	CREATE VIEW run_ends AS SELECT n, finished, status FROM dynbgw_runs;
	CREATE VIEW all_runs AS SELECT * FROM dynbgw_runs;
	GRANT SELECT ON worker_runs, run_ends TO carol;});

# The new library with 1.1.1's SQL: launches, saves, reports, restores.
my $dave_pid = $node->safe_psql('v111', q{SET ROLE dave;
	SELECT dynbgw_launch(1, 'INSERT INTO ticks VALUES (current_user)', '100 ms', persist => true)});
like($dave_pid, qr/^\d+$/, 'before the update, dave launches and saves worker 1');
is($node->safe_psql('v111', q{SET ROLE dave; SELECT n, state FROM dynbgw_workers}),
	'1|idle', 'dynbgw_workers answers with the old columns');
ok($node->poll_query_until('v111', 'SELECT count(*) > 0 FROM dynbgw_runs WHERE n = 1'),
	'dynbgw_runs answers with the old columns');
is($node->safe_psql('v111', 'SELECT count(*) FROM dynbgw_definitions'), '1',
	'the definition was saved in the old table');
$node->safe_psql('v111', 'SELECT dynbgw_stop(n => 1)');
# A dynbgw_launch of 1.2's signature that is not the extension's is passed
# over for the extension's own.
$node->safe_psql('v111', q{CREATE FUNCTION public.dynbgw_launch(integer, text, interval, name,
	name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval)
	RETURNS integer LANGUAGE sql AS 'SELECT 0'});
is($node->safe_psql('v111', 'SELECT n, pid IS NOT NULL, error FROM dynbgw_restore()'),
	'1|t|', 'the saved definition restores with the old SQL');
$node->safe_psql('v111', q{DROP FUNCTION public.dynbgw_launch(integer, text, interval, name,
	name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval)});
$dave_pid = $node->safe_psql('v111', 'SELECT dynbgw_pid(1)');

# Update v111 to $version with worker 1 running: the DBA's grants and
# revokes stay ($privileges, a query, gives $expected), and so does the
# worker's process.
sub update_v111
{
	my ($version, $privileges, $expected) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $pid = $node->safe_psql('v111', 'SELECT dynbgw_pid(1)');
	my ($rc, $o, $e) = $node->psql('v111', "ALTER EXTENSION dynbgw UPDATE TO '$version'");
	is($rc, 0, "updated to $version") or diag $e;
	is($node->safe_psql('v111', q{SELECT extversion FROM pg_extension WHERE extname = 'dynbgw'}),
		$version, "the extension is at $version");
	is($node->safe_psql('v111', $privileges), $expected,
		"the grants and revokes of the DBA survived the update to $version");
	is($node->safe_psql('v111', 'SELECT dynbgw_pid(1)'), $pid,
		'worker 1 still runs, as the same process');
}

update_v111('1.2', qq{
	SELECT has_function_privilege('dave', '$launch_12', 'EXECUTE'),
	       has_table_privilege('carol', 'dynbgw_runs', 'SELECT'),
	       has_table_privilege('dave', 'dynbgw_runs', 'SELECT'),
	       has_function_privilege('dave', 'dynbgw_workers()', 'EXECUTE'),
	       has_function_privilege('mon', 'dynbgw_workers()', 'EXECUTE'),
	       has_function_privilege('dave', 'dynbgw_wake(integer)', 'EXECUTE')},
	't|t|f|t|f|f');
is($node->safe_psql('v111', q{
	SELECT has_table_privilege('dave', 'dynbgw_workers', 'SELECT'),
	       has_table_privilege('mon', 'dynbgw_workers', 'SELECT'),
	       has_table_privilege('carol', 'worker_runs', 'SELECT'),
	       has_table_privilege('carol', 'run_ends', 'SELECT'),
	       has_table_privilege('carol', 'all_runs', 'SELECT')}),
	't|f|t|t|f', 'the grant and revoke on dynbgw_workers and those on the users\' views stay');
is($node->safe_psql('v111', sprintf($columns_sql, 'dynbgw_workers')),
	join(',', (split /,/, $workers_columns)[0 .. 24]),
	'dynbgw_workers has its 25 columns in order');
is($node->safe_psql('v111', sprintf($columns_sql, 'dynbgw_runs')),
	'n,launch,pid,role,database,started,finished,duration,status,sqlstate,message,result,trigger,attempt',
	'dynbgw_runs its 14');
is($node->safe_psql('v111', sprintf($columns_sql, 'all_workers') . ';'
		  . sprintf($columns_sql, 'all_runs')),
	join(',', (split /,/, $workers_columns)[0 .. 21])
	  . "\nn,launch,pid,role,database,started,finished,duration,status,sqlstate,message,result",
	'users\' SELECT * views of 1.1.1 keep their 22 and 12 columns');
is($node->safe_psql('v111', q{SET ROLE carol; SELECT n, role FROM worker_runs;
		RESET ROLE; SELECT n, pid FROM all_workers}),
	"1|dave\n1|$dave_pid", 'the users\' views on dynbgw_workers show the running worker');
my $last_run = $node->safe_psql('v111', 'SELECT max(started) FROM all_runs WHERE n = 1');
ok($node->poll_query_until('v111', qq{
	SELECT (SELECT max(started) FROM all_runs WHERE n = 1) > '$last_run'
	   AND (SELECT count(*) FROM run_ends WHERE n = 1 AND status = 'succeeded') > 0}),
	'and those on dynbgw_runs its new runs');
my $dave_ticks = $node->safe_psql('v111', 'SELECT count(*) FROM ticks');
ok($node->poll_query_until('v111', "SELECT count(*) > $dave_ticks + 3 FROM ticks"),
	'and keeps its authority: the grant went to the new dynbgw_launch');
is($node->safe_psql('v111', 'SELECT n, retry, retry_delay FROM dynbgw_definitions'),
	'1||', 'the saved row has no retries');
like($node->safe_psql('v111', 'SET ROLE dave; SELECT * FROM dynbgw_dump_definitions()'),
	qr/retry => NULL, retry_delay => NULL/, 'and dumps as such');
my ($v111_dump, $v111_err);
IPC::Run::run([ 'pg_dump', '-s', '-d', $node->connstr('v111') ], '>', \$v111_dump, '2>', \$v111_err)
  or diag $v111_err;
like($v111_dump, qr/GRANT ALL ON FUNCTION public\.dynbgw_launch\(.*integer, retry_delay interval.*\) TO dave;/,
	'pg_dump carries the grant on the new dynbgw_launch');
like($v111_dump, qr/REVOKE SELECT ON TABLE public\.dynbgw_runs FROM PUBLIC;/,
	'and the revoke on the new dynbgw_runs');
like($v111_dump, qr/REVOKE ALL ON FUNCTION public\.dynbgw_workers\(.*\) FROM PUBLIC;/,
	'and the revoke on the new dynbgw_workers()');
$node->safe_psql('v111', q{SET ROLE dave;
	SELECT dynbgw_launch(1, 'INSERT INTO ticks VALUES (current_user)', '100 ms',
	                     if_running => 'replace', persist => true, retry => 2)});
is($node->safe_psql('v111', 'SELECT n, retry, retry_delay FROM dynbgw_definitions'),
	'1|2|00:00:01', 'a launch after the update saves its retries');

update_v111('1.3', qq{
	SELECT has_function_privilege('dave', '$launch', 'EXECUTE'),
	       has_function_privilege('dave', 'dynbgw_workers()', 'EXECUTE'),
	       has_function_privilege('mon', 'dynbgw_workers()', 'EXECUTE'),
	       has_table_privilege('dave', 'dynbgw_workers', 'SELECT'),
	       has_table_privilege('mon', 'dynbgw_workers', 'SELECT'),
	       has_table_privilege('carol', 'worker_runs', 'SELECT'),
	       has_function_privilege('dave', 'dynbgw_result_json(integer)', 'EXECUTE')},
	't|t|f|t|f|t|t');
is($node->safe_psql('v111', sprintf($columns_sql, 'dynbgw_workers')),
	join(',', (split /,/, $workers_columns)[0 .. 25]),
	'dynbgw_workers has its 26 columns in order');
is($node->safe_psql('v111', sprintf($columns_sql, 'all_workers')),
	join(',', (split /,/, $workers_columns)[0 .. 21]),
	'a user\'s SELECT * view of 1.1.1 still has its 22 columns');
is($node->safe_psql('v111', q{SET ROLE carol; SELECT n, role FROM worker_runs}),
	'1|dave', 'and a user\'s view shows the running worker');
$dave_ticks = $node->safe_psql('v111', 'SELECT count(*) FROM ticks');
ok($node->poll_query_until('v111', "SELECT count(*) > $dave_ticks + 3 FROM ticks"),
	'which keeps its authority');
is($node->safe_psql('v111', 'SELECT n, retry, keep_result FROM dynbgw_definitions'),
	'1|2|', 'the saved row has no keep_result');
like($node->safe_psql('v111', 'SET ROLE dave; SELECT * FROM dynbgw_dump_definitions()'),
	qr/retry => '2', retry_delay => '00:00:01', keep_result => NULL/, 'and dumps as such');
IPC::Run::run([ 'pg_dump', '-s', '-d', $node->connstr('v111') ], '>', \$v111_dump, '2>', \$v111_err)
  or diag $v111_err;
like($v111_dump, qr/GRANT ALL ON FUNCTION public\.dynbgw_launch\(.*retry_delay interval.*keep_result boolean.*\) TO dave;/,
	'pg_dump carries the grant on the new dynbgw_launch');
like($v111_dump, qr/REVOKE ALL ON FUNCTION public\.dynbgw_workers\(.*\) FROM PUBLIC;/,
	'and the revoke on the new dynbgw_workers()');
$node->safe_psql('v111', q{SET ROLE dave;
	SELECT dynbgw_launch(1, 'SELECT current_user AS who', '1 hour',
	                     if_running => 'replace', persist => true, keep_result => true)});
ok($node->poll_query_until('v111', 'SELECT count(*) = 1 FROM dynbgw_results WHERE n = 1'),
	'a launch after the update keeps its result');
is($node->safe_psql('v111', q{SET ROLE dave;
	SELECT who FROM dynbgw_result(1) AS (who name)}), 'dave', 'which dave reads');
is($node->safe_psql('v111', 'SELECT keep_result FROM dynbgw_definitions WHERE n = 1'),
	't', 'and it is saved with keep_result');

$node->safe_psql('v111', 'GRANT EXECUTE ON FUNCTION dynbgw_restore() TO dave');
update_v111('1.4', qq{
	SELECT has_function_privilege('dave', '$launch', 'EXECUTE'),
	       has_function_privilege('dave', 'dynbgw_workers()', 'EXECUTE'),
	       has_function_privilege('mon', 'dynbgw_workers()', 'EXECUTE'),
	       has_table_privilege('dave', 'dynbgw_workers', 'SELECT'),
	       has_table_privilege('mon', 'dynbgw_workers', 'SELECT'),
	       has_table_privilege('carol', 'worker_runs', 'SELECT'),
	       has_function_privilege('dave', 'dynbgw_restore()', 'EXECUTE'),
	       has_function_privilege('mon', 'dynbgw_results()', 'EXECUTE')},
	't|t|f|t|f|t|t|t');
is($node->safe_psql('v111', sprintf($columns_sql, 'dynbgw_workers')),
	$workers_columns, 'dynbgw_workers has its 27 columns in order');
is($node->safe_psql('v111', sprintf($columns_sql, 'all_workers')),
	join(',', (split /,/, $workers_columns)[0 .. 21]),
	'a user\'s SELECT * view of 1.1.1 still has its 22 columns');
is($node->safe_psql('v111', q{SET ROLE dave; SELECT who FROM dynbgw_result(1) AS (who name)}),
	'dave', 'the result kept before the update is read after it');
# dave launches under direct grants: the DBA grants him the new functions.
$node->safe_psql('v111', q{
	GRANT EXECUTE ON FUNCTION dynbgw_pool_create(text, integer, name, name, integer, boolean) TO dave;
	GRANT EXECUTE ON FUNCTION dynbgw_pool_drop(text, interval, boolean) TO dave;
	GRANT SELECT, INSERT, UPDATE, DELETE ON dynbgw_pool_definitions TO dave;
	SET ROLE dave;
	SELECT dynbgw_pool_create('dave_pool', 1, persist => true)});
is($node->safe_psql('v111', q{SET ROLE dave;
	SELECT outcome FROM dynbgw_wait_task(dynbgw_submit('dave_pool', 'INSERT INTO ticks VALUES (current_user)'), '60 s')}),
	'succeeded', 'a pool made after the update runs a task');
like($node->safe_psql('v111', 'SET ROLE dave; SELECT * FROM dynbgw_dump_definitions()'),
	qr/SELECT dynbgw_pool_create\('dave_pool', 1, database => NULL, role => NULL, queue_size => 1000, persist => true\);/,
	'and is dumped with the saved workers');
$node->safe_psql('v111', q{SET ROLE dave; SELECT dynbgw_pool_drop('dave_pool')});
is($node->safe_psql('v111', q{SET ROLE dave;
	SELECT string_agg(coalesce(error, 'restored'), ',') FROM dynbgw_restore() WHERE pool = 'dave_pool'}),
	'restored', 'and is restored');
ok(IPC::Run::run([ 'pg_dump', '-s', '-d', $node->connstr('v111'), '-U', 'dave', '-T', 'ticks' ],
		'>', \$v111_dump, '2>', \$v111_err),
	'pg_dump -s as dave works after the update') or diag $v111_err;
like($v111_dump, qr/REVOKE ALL ON FUNCTION public\.dynbgw_workers\(.*\) FROM PUBLIC;/,
	'and carries the revoke on the new dynbgw_workers()');
$node->safe_psql('v111', q{SET ROLE dave; SELECT dynbgw_pool_drop('dave_pool', forget => true)});
$node->safe_psql('v111', 'SELECT dynbgw_stop(n => 1, forget => true)');

###########################################################################
# 4. A database owner's operators in the extension's schema do not run in
#    the superuser's CREATE EXTENSION or update.  "CASE x WHEN 0" with an
#    oid, or "=" between two regclass, has no exact operator in pg_catalog,
#    so an unqualified one took the owner's: 1.0 -> 1.1 made its owner a
#    superuser whenever a DBA grant was to be carried over.
###########################################################################

$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE DATABASE mine OWNER mallory;
	CREATE DATABASE mine_fresh OWNER mallory});
my $plant = q{
	SET ROLE mallory;
	CREATE FUNCTION public.pwn(a oid, b oid) RETURNS boolean
	LANGUAGE plpgsql AS $$
	BEGIN
		IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
			ALTER ROLE mallory SUPERUSER;
		END IF;
		RETURN a OPERATOR(pg_catalog.=) b;
	END $$;
	CREATE FUNCTION public.pwn_int(a oid, b integer) RETURNS boolean
	LANGUAGE sql AS 'SELECT public.pwn(a, b::oid)';
	CREATE FUNCTION public.pwn_class(a regclass, b regclass) RETURNS boolean
	LANGUAGE sql AS 'SELECT public.pwn(a::oid, b::oid)';
	CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = integer, FUNCTION = public.pwn_int);
	CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = public.pwn_class);
	RESET ROLE;};
$node->safe_psql('mine', "CREATE EXTENSION dynbgw VERSION '1.0'; $plant
	GRANT EXECUTE ON FUNCTION dynbgw_stop(integer, interval, integer) TO mallory;
	REVOKE SELECT ON dynbgw_workers FROM PUBLIC;
	ALTER EXTENSION dynbgw UPDATE");
$node->safe_psql('mine_fresh', "$plant CREATE EXTENSION dynbgw");
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
	'f', 'the owner of the schema is no superuser after the update and a fresh install');
is($node->safe_psql('mine', q{
	SELECT has_function_privilege('mallory', 'dynbgw_stop(integer, interval, integer, boolean)', 'EXECUTE'),
	       has_table_privilege('mallory', 'dynbgw_workers', 'SELECT')}),
	't|f', 'and the DBA\'s grant and revoke were carried over');

###########################################################################
# 5. A user's view on the function dynbgw_workers(), not on the view, holds
#    the old function, which the update cannot then drop: a plain
#    dependency error, and 1.1.1 as it was.  Dropped and made again around
#    the update, in one transaction, it lets the update through.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE onfunc');
$node->safe_psql('onfunc', q{
	CREATE EXTENSION dynbgw VERSION '1.1.1';
	CREATE VIEW worker_numbers AS SELECT n FROM dynbgw_workers()});
($ret, $out, $err) = $node->psql('onfunc', "\\set VERBOSITY verbose\nALTER EXTENSION dynbgw UPDATE");
like($err, qr/ERROR:  2BP01: cannot drop function dynbgw_workers_1_1\(\) because other objects depend on it\n.*DETAIL:  view worker_numbers depends on function dynbgw_workers_1_1\(\)/s,
	'a view on the function dynbgw_workers() blocks the update with the plain dependency error');
is($node->safe_psql('onfunc', q{
	SELECT extversion,
	       (SELECT count(*) FROM pg_proc WHERE proname ~ '^dynbgw_(workers|runs)'),
	       (SELECT count(*) FROM pg_attribute WHERE attrelid = 'dynbgw_workers'::regclass AND attnum > 0),
	       to_regprocedure('dynbgw_wake(integer)') IS NULL
	FROM pg_extension WHERE extname = 'dynbgw'}),
	'1.1.1|2|22|t', 'and leaves 1.1.1 whole');
$node->safe_psql('onfunc', q{
	BEGIN;
	DROP VIEW worker_numbers;
	ALTER EXTENSION dynbgw UPDATE;
	CREATE VIEW worker_numbers AS SELECT n FROM dynbgw_workers();
	COMMIT;});
is($node->safe_psql('onfunc', q{SELECT extversion FROM pg_extension WHERE extname = 'dynbgw'}),
	'1.4', 'dropped and made again around it, the view lets the update through');

###########################################################################
# 6. A superuser made the extension and was demoted since; another
#    superuser updates it.  The old owner's own EXECUTE on the functions
#    made anew is no grant, and must not become one: from 1.0 and from
#    1.1.1, the demoted role may not launch or read through them.
###########################################################################

$node->safe_psql('postgres', 'CREATE ROLE sa1 LOGIN SUPERUSER');
for my $from ('1.0', '1.1.1')
{
	my $db = 'demoted_' . ($from =~ s/\./_/gr);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "SET ROLE sa1; CREATE EXTENSION dynbgw VERSION '$from'");
	$node->safe_psql('postgres', 'ALTER ROLE sa1 NOSUPERUSER');
	$node->safe_psql($db, 'ALTER EXTENSION dynbgw UPDATE');
	is( $node->safe_psql(
			$db, q{
		SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.proname)
		FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
		WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dynbgw')
		  AND d.deptype = 'e' AND p.proowner <> 'sa1'::regrole
		  AND has_function_privilege('sa1', p.oid, 'EXECUTE')
		  AND NOT has_function_privilege('public', p.oid, 'EXECUTE')}),
		'',
		"from $from: the demoted maker of the extension has EXECUTE on no function made anew");
	my ($rc, $o, $e) = $node->psql($db,
		"SET ROLE sa1; SELECT dynbgw_launch(6, 'SELECT 1', runs => 1)");
	like($e, qr/permission denied for function dynbgw_launch/,
		"from $from: and may not launch");
	$node->safe_psql('postgres', 'ALTER ROLE sa1 SUPERUSER');
}

# The update's own warning aside, the log is clean.
unlike(slurp_file($node->logfile),
	qr/leaked|PANIC|TRAP|server process .* was terminated|WARNING:  (?!deleted 1 saved)/,
	'no other warning, leak or crash in the log');
$node->stop;

done_testing();

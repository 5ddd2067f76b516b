
# Copyright (c) dynbgw authors

# Saved definitions against their attackers (dynbgw 1.1.1).  Identity never
# comes from the table's data: whoever writes a row, by whatever route, and
# whoever restores it, a definition runs only as a role that saved it and
# still exists, as decided now.
#
# 1. A trigger that fires for every writer (BYPASSRLS, pg_write_all_data,
#    session_replication_role = replica) refuses rows in another role's
#    name and changes to another role's rows, with 42501; superusers, the
#    table's owner, may write anything.  A forged row never runs.
# 2. dynbgw_restore() by a non-superuser that sees every row (BYPASSRLS)
#    acts only for the roles it may SET ROLE to.
# 3. The restore at server start and dynbgw_restore() run no SQL: a
#    database owner's search_path with its own "=" operators changes
#    nothing.
# 4. Roles are kept by OID: a role dropped and created again under the same
#    name (as a superuser) gets nothing; a renamed role keeps its own.
# 5. A definition saved without a database belongs to the database its row
#    is in: a copy of the database (CREATE DATABASE ... TEMPLATE) launches it
#    in the copy.
# 6. Numbers are server-wide: a definition whose number another worker holds
#    is reported with the holder's role and database, not launched, and not
#    taken for launched.
# 7. dynbgw_stop(..., forget => true) in a database without the definition
#    says so and leaves the other database's definition alone.
# 8. persist with if_running => 'skip' saves nothing when the number is taken.
# 9. A number saved by another role (or by a dropped one) is not taken over:
#    42710, naming who holds it.
# 10. A cancel or statement_timeout during dynbgw_restore() ends the call
#    with 57014; it is not swallowed as one row's error.
# 11. dynbgw's own processes cannot be started with dynbgw_launch_function.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# Numbers up to 41 are used; a crash in section 11 must not end the node.
my $node = new_node('main',
	conf => "dynbgw.max_workers = 50\nrestart_after_crash = on");
my $su = $node->safe_psql('postgres', 'SELECT current_user');
my $version = $node->safe_psql('postgres', 'SHOW server_version_num');

# $sql in database $db (postgres unless given) as role $role (undef: the
# bootstrap superuser), with errors in VERBOSITY verbose ("ERROR:  42501:
# ..."): (exit code, stdout, stderr).  Never fatal, so that the file runs
# to its end against code that behaves otherwise.
sub run_as
{
	my ($role, $sql, $db) = @_;
	return $node->psql(
		$db // 'postgres',
		"\\set VERBOSITY verbose\n$sql",
		extra_params => [ defined $role ? ('-U', $role) : () ]);
}

# $sql as $role in $db: its output; a failure is reported, not fatal.
sub as_role
{
	my ($role, $sql, $db) = @_;
	my ($ret, $out, $err) = run_as($role, $sql, $db);
	diag 'as ' . ($role // 'superuser') . ": $sql\n$err" if $ret != 0;
	return $out;
}

# $role saves worker $n, an idle job, in $db and stops it, which leaves
# only its saved row (a test of its own).
sub save_and_stop
{
	my ($role, $n, $db) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is( as_role(
			$role,
			qq{SELECT dynbgw_launch($n, 'SELECT 1', naptime => '1 hour', persist => true) > 0
			     AND dynbgw_stop(n => $n)},
			$db),
		't',
		"$role saves worker $n" . (defined $db ? " in $db" : '') . ' and stops it');
}

# $sql as $role in $db, expecting an error (a test of its own): stderr.
sub error_as
{
	my ($role, $sql, $name, $db) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($ret, $out, $err) = run_as($role, $sql, $db);
	isnt($ret, 0, $name);
	return $err;
}

# dynbgw_restore() as $role in $db: { n => { pid => ..., error => ... } }.
sub restore_as
{
	my ($role, $db) = @_;
	my %rows;
	my $out = as_role($role,
		'SELECT n, pid, error FROM dynbgw_restore() ORDER BY n', $db);
	for my $line (split /\n/, $out)
	{
		my ($n, $pid, $error) = split /\|/, $line, 3;
		$rows{$n} = { pid => $pid, error => $error };
	}
	return \%rows;
}

# The rows of restore_as() in short: "12:pid,16:error" (a PID and no error,
# or an error and no PID; anything else is "12:pid+error" or "12:none").
sub outcome
{
	my ($rows) = @_;
	return join(
		',',
		map {
			my ($p, $e) = ($rows->{$_}{pid} ne '', $rows->{$_}{error} ne '');
			"$_:" . ($p && $e ? 'pid+error' : $p ? 'pid' : $e ? 'error' : 'none')
		} sort { $a <=> $b } keys %$rows);
}

# Workers as "n:role@database", in number order.
my $workers_sql = q{
SELECT coalesce(string_agg(n || ':' || role || '@' || database, ',' ORDER BY n), '')
FROM dynbgw_workers};

# Check for $secs seconds, every 100 ms, that $query in database $db keeps
# returning $expected (DynbgwTest's stays() for any database).  Bounded by
# nature: the assertion is that something does not happen.
sub stays_in
{
	my ($n, $db, $query, $expected, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		my $got = $n->safe_psql($db, $query);
		if ($got ne $expected)
		{
			diag "got \"$got\" instead of \"$expected\" for: $query";
			return 0;
		}
		usleep(100_000);
	}
	return 1;
}


# Stop every worker and delete every saved definition in @dbs, so that a
# section starts from nothing even when the one before failed.
sub clean_slate
{
	my (@dbs) = @_;
	as_role(undef, 'SELECT count(dynbgw_stop(n => n)) FROM dynbgw_workers');
	as_role(undef, 'DELETE FROM dynbgw_definitions', $_)
	  for ('postgres', @dbs);
}

$node->safe_psql(
	'postgres', q{
CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN;
CREATE ROLE dave LOGIN; CREATE ROLE dora LOGIN; CREATE ROLE erin LOGIN;
CREATE ROLE fred LOGIN;
CREATE ROLE mallory LOGIN BYPASSRLS;
CREATE ROLE writer LOGIN BYPASSRLS;
GRANT dynbgw_user TO alice, bob, carol, dave, dora, fred, mallory;
CREATE TABLE pwned (who name DEFAULT current_user, at timestamptz DEFAULT now());
CREATE TABLE ticks (who name DEFAULT current_user, at timestamptz DEFAULT now());
GRANT INSERT ON ticks TO PUBLIC;
CREATE DATABASE app;
CREATE DATABASE reports;});
$node->safe_psql($_, 'CREATE EXTENSION dynbgw') for ('app', 'reports');
# pg_write_all_data exists from PostgreSQL 14; before, the same rights.
$node->safe_psql('postgres',
	$version >= 140000
	? 'GRANT pg_write_all_data TO writer'
	: 'GRANT INSERT, UPDATE, DELETE ON dynbgw_definitions TO writer');

is($node->safe_psql('postgres',
		q{SELECT extversion = default_version FROM pg_extension, pg_available_extensions
		  WHERE extname = 'dynbgw' AND name = extname}),
	't', 'dynbgw is at its default version, 1.1.1 or later');

# 1.1 kept the database by name, and required it; 1.1.1 keeps NULL for
# "this database".  Rows written directly use what the table takes, so that
# they reach its checks on either version (and, on 1.1, show what an attack
# did).
my $db_here =
  $node->safe_psql('postgres', q{
SELECT format_type(atttypid, NULL) FROM pg_attribute
WHERE attrelid = 'dynbgw_definitions'::regclass AND attname = 'database'})
  eq 'name' ? 'current_database()' : 'NULL';

# A row for worker $n in the name of $owner, to run $command as $owner
# (owner 'NULL': left to the table, to run as mallory).
sub row_sql
{
	my ($n, $owner, $command) = @_;
	return qq{INSERT INTO dynbgw_definitions (n, owner, command, naptime, database, role)
	          VALUES ($n, $owner, '$command', '1 hour', $db_here, 'mallory');}
	  if $owner eq 'NULL';
	return qq{INSERT INTO dynbgw_definitions (n, owner, command, naptime, database, role)
	          VALUES ($n, '$owner', '$command', '1 hour', $db_here, '$owner');};
}

# What a forged row would run: only a superuser may write to pwned.
my $pwn = 'INSERT INTO pwned DEFAULT VALUES';

# The errors of the trigger.
sub in_the_name_of
{
	my ($role) = @_;
	return
	  qr/ERROR:  42501: permission denied to save a dynbgw definition in the name of role "\Q$role\E"/;
}
my $not_yours =
  qr/ERROR:  42501: permission denied to change the saved definition of dynbgw worker \d+/;

###########################################################################
# 1. Forged owners.  The trigger dynbgw_definitions_guard fires always
# (also with session_replication_role = replica).
#
# mallory (BYPASSRLS, dynbgw_user) inserts a row in the superuser's name,
# and turns her own row into the superuser's and into bob's; she changes and
# deletes bob's row, which she sees.  writer (BYPASSRLS, pg_write_all_data,
# not dynbgw_user) inserts rows in bob's and the superuser's name, also
# with session_replication_role = replica (superuser-only; from 15 granted
# with GRANT SET ON PARAMETER), and changes and deletes every row.  All
# fail with 42501.  A row mallory inserts with owner NULL becomes her own.
# Then a superuser's dynbgw_restore() launches only the rows their owners
# saved, as those owners: nothing as the superuser, pwned stays empty.
# The superuser, owner of the table, may write any row.
###########################################################################

is( $node->safe_psql(
		'postgres', q{
SELECT tgenabled FROM pg_trigger
WHERE tgrelid = 'dynbgw_definitions'::regclass AND tgname = 'dynbgw_definitions_guard'}),
	'A',
	'the trigger dynbgw_definitions_guard is ENABLE ALWAYS');

my $err = error_as('mallory', row_sql(11, $su, $pwn),
	'mallory (BYPASSRLS) cannot insert a row in the superuser\'s name');
like($err, in_the_name_of($su), 'with 42501, naming the superuser');

is(as_role('mallory', row_sql(12, 'mallory', 'SELECT 1') . ' SELECT 1'),
	'1', 'mallory inserts a row of her own');
is(as_role('mallory', row_sql(18, 'NULL', 'SELECT 1') . ' SELECT 1'),
	'1', 'and one with owner NULL');
is(as_role(undef, 'SELECT owner FROM dynbgw_definitions WHERE n = 18'),
	'mallory', 'which is saved as her own');

$err = error_as('mallory',
	qq{UPDATE dynbgw_definitions SET owner = '$su', command = '$pwn' WHERE n = 12;},
	'mallory cannot turn her row into the superuser\'s');
like($err, in_the_name_of($su), 'with 42501, naming the superuser');
$err = error_as('mallory',
	q{UPDATE dynbgw_definitions SET owner = 'bob', role = 'bob' WHERE n = 12;},
	'mallory cannot turn her row into bob\'s');
like($err, in_the_name_of('bob'), 'with 42501, naming bob');

save_and_stop('bob', 16);
is(as_role('mallory', 'SELECT owner FROM dynbgw_definitions WHERE n = 16'),
	'bob', 'mallory, with BYPASSRLS, sees bob\'s row');
$err = error_as('mallory',
	qq{UPDATE dynbgw_definitions SET command = '$pwn' WHERE n = 16;},
	'mallory cannot change bob\'s row');
like(
	$err,
	qr/ERROR:  42501: permission denied to change the saved definition of dynbgw worker 16\nDETAIL:  [^\n]*\bbob\b/,
	'with 42501, the detail naming bob');
$err = error_as('mallory', 'DELETE FROM dynbgw_definitions WHERE n = 16;',
	'mallory cannot delete bob\'s row');
like($err, qr/ERROR:  42501: permission denied to change the saved definition of dynbgw worker 16/,
	'with 42501');

$err = error_as('writer', row_sql(13, 'bob', $pwn),
	'writer (BYPASSRLS, pg_write_all_data) cannot insert a row in bob\'s name');
like($err, in_the_name_of('bob'), 'with 42501, naming bob');
$err = error_as('writer', row_sql(14, $su, $pwn),
	'writer cannot insert a row in the superuser\'s name');
like($err, in_the_name_of($su), 'with 42501, naming the superuser');

my ($ret, $out);
($ret, $out, $err) = $node->psql(
	'postgres',
	"\\set VERBOSITY verbose\nSET session_replication_role = replica;\n"
	  . row_sql(17, $su, $pwn),
	on_error_stop => 0,
	extra_params => [ '-U', 'writer' ]);
like(
	$err,
	qr/ERROR:  42501: permission denied to set parameter "session_replication_role"/,
	'writer may not SET session_replication_role = replica');
like($err, in_the_name_of($su),
	'and the row he inserts after trying is refused by the trigger');

SKIP:
{
	skip "GRANT SET ON PARAMETER comes with PostgreSQL 15 ($version)", 2
	  if $version < 150000;
	$node->safe_psql('postgres',
		'GRANT SET ON PARAMETER session_replication_role TO writer');
	($ret, $out, $err) = $node->psql(
		'postgres',
		"\\set VERBOSITY verbose\nSET session_replication_role = replica;\n"
		  . "SHOW session_replication_role;\n"
		  . row_sql(17, $su, $pwn),
		on_error_stop => 0,
		extra_params => [ '-U', 'writer' ]);
	is($out, 'replica',
		'granted SET on it, writer runs with session_replication_role = replica');
	like($err, in_the_name_of($su),
		'and the trigger still refuses his row in the superuser\'s name');
	$node->safe_psql('postgres',
		'REVOKE SET ON PARAMETER session_replication_role FROM writer');
}

is(as_role(undef, 'SELECT string_agg(n || \':\' || owner, \',\' ORDER BY n) FROM dynbgw_definitions'),
	'12:mallory,16:bob,18:mallory', 'the table holds only what its owners saved');
is(outcome(restore_as(undef)),
	'12:pid,16:pid,18:pid',
	'a superuser\'s dynbgw_restore() launches those rows, and nothing else');
is($node->safe_psql('postgres', $workers_sql),
	'12:mallory@postgres,16:bob@postgres,18:mallory@postgres',
	'each as the role that saved it: nothing runs as the superuser');
ok(stays($node, 'SELECT count(*) FROM pwned', '0', 1),
	'no forged command ran (pwned stays empty for 1 s)');
clean_slate();

# The positive control: the superuser, who owns the table, writes any row.
as_role('mallory', row_sql(12, 'mallory', 'SELECT 1'));
as_role('bob', q{SELECT dynbgw_launch(16, 'SELECT 1', naptime => '1 hour', persist => true);
                 SELECT dynbgw_stop(n => 16)});
is(as_role(undef, row_sql(15, 'bob', 'SELECT 1') =~ s/;$/ RETURNING n, owner;/r),
	'15|bob', 'the superuser inserts a row in bob\'s name');
is(as_role(undef,
		q{UPDATE dynbgw_definitions SET owner = 'alice', role = 'alice' WHERE n = 15 RETURNING owner}),
	'alice', 'turns it into alice\'s');
is(as_role(undef, q{UPDATE dynbgw_definitions SET command = 'SELECT 2' WHERE n = 16 RETURNING owner}),
	'bob', 'changes bob\'s row');
is(as_role(undef, 'DELETE FROM dynbgw_definitions WHERE n = 15 RETURNING n'),
	'15', 'and deletes alice\'s');

# writer has no SELECT: his UPDATE and DELETE take every row.
$err = error_as('writer', "UPDATE dynbgw_definitions SET command = '$pwn';",
	'writer cannot change the rows of others');
like($err, $not_yours, 'with 42501');
$err = error_as('writer', 'DELETE FROM dynbgw_definitions;',
	'writer cannot delete the rows of others');
like($err, $not_yours, 'with 42501');
is(as_role(undef, q{SELECT string_agg(n || ':' || owner || ':' || command, ',' ORDER BY n)
                    FROM dynbgw_definitions}),
	'12:mallory:SELECT 1,16:bob:SELECT 2', 'the rows are unchanged');
clean_slate();

###########################################################################
# 2. dynbgw_restore() by a non-superuser that sees every row: alice, with
# BYPASSRLS and membership in dave, restores her own definition and dave's
# (she may SET ROLE to dave), each as its owner, and does not list or
# launch bob's.
###########################################################################

$node->safe_psql('postgres', 'ALTER ROLE alice BYPASSRLS; GRANT dave TO alice');
for my $def ([ 'alice', 21 ], [ 'bob', 22 ], [ 'dave', 23 ])
{
	save_and_stop(@$def);
}
is(as_role('alice', 'SELECT count(*) FROM dynbgw_definitions'),
	'3', 'alice, with BYPASSRLS, sees all three rows');
is(outcome(restore_as('alice')),
	'21:pid,23:pid',
	'her dynbgw_restore() lists her own row and dave\'s, not bob\'s');
is($node->safe_psql('postgres', $workers_sql),
	'21:alice@postgres,23:dave@postgres',
	'each launched as its owner; bob\'s worker 22 is not launched');
$node->safe_psql('postgres', 'ALTER ROLE alice NOBYPASSRLS; REVOKE dave FROM alice');
clean_slate();

###########################################################################
# 3. The restore at server start, and search_path.  On a node with dynbgw
# preloaded and dynbgw.restore_databases = 'app', the owner of database app
# (not a superuser) makes "=" operators of its own for the usual types,
# whose function records who called it, and puts their schema first:
# ALTER DATABASE app SET search_path = evil, pg_catalog, public.  After a
# restart the definitions saved in app (a superuser's and alice's) come
# back, and the operators were never called.  Nor are they when a superuser
# calls dynbgw_restore() in a session of app with that search_path.
###########################################################################

my $boot = PostgreSQL::Test::Cluster->new('boot');
$boot->init;
$boot->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'dynbgw'
dynbgw.restore_databases = 'app'
max_worker_processes = 16});
$boot->start;
$boot->safe_psql(
	'postgres', q{
CREATE EXTENSION dynbgw;
CREATE ROLE appowner LOGIN; CREATE ROLE alice LOGIN;
CREATE DATABASE app OWNER appowner;});
$boot->safe_psql('app',
	'CREATE EXTENSION dynbgw; GRANT dynbgw_user TO alice');

# $sql in app as $role, with the database's search_path or, if $pin, with
# pg_catalog first (the test's own queries must not call the operators).
sub in_app
{
	my ($role, $sql, $pin) = @_;
	my ($r, $o, $e) = $boot->psql(
		'app',
		($pin ? "SET search_path = pg_catalog, public;\n" : '') . $sql,
		extra_params => [ '-U', $role // $su ]);
	diag "in app as " . ($role // $su) . ": $sql\n$e" if $r != 0;
	return $o;
}

like(in_app(undef, q{SELECT dynbgw_launch(1, 'SELECT 1', naptime => '1 hour', persist => true)}),
	qr/^\d+$/, 'the superuser saves worker 1 in app');
like(in_app('alice', q{SELECT dynbgw_launch(2, 'SELECT 1', naptime => '1 hour', persist => true)}),
	qr/^\d+$/, 'alice saves worker 2 in app');

my $evil = q{
CREATE SCHEMA evil;
CREATE TABLE evil.calls (who name, super boolean, at timestamptz DEFAULT now());
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT INSERT ON evil.calls TO PUBLIC;
};
my @pairs = (
	[ 'name',         'name' ],         [ 'name',     'text' ],
	[ 'text',         'name' ],         [ 'text',     'text' ],
	[ 'integer',      'integer' ],      [ 'bigint',   'bigint' ],
	[ 'integer',      'bigint' ],       [ 'oid',      'oid' ],
	[ 'regrole',      'regrole' ],      [ 'regrole',  'oid' ],
	[ 'oid',          'regrole' ],      [ 'regclass', 'regclass' ],
	[ 'regnamespace', 'regnamespace' ], [ 'boolean',  'boolean' ]);
for my $pair (@pairs)
{
	my ($l, $r) = @$pair;
	$evil .= qq{
CREATE FUNCTION evil.eq(a $l, b $r) RETURNS boolean LANGUAGE plpgsql AS \$f\$
BEGIN
	INSERT INTO evil.calls (who, super)
	VALUES (current_user, pg_catalog.current_setting('is_superuser')::pg_catalog.bool);
	RETURN a OPERATOR(pg_catalog.=) b;
END \$f\$;
CREATE OPERATOR evil.= (LEFTARG = $l, RIGHTARG = $r, FUNCTION = evil.eq);
};
}
$evil .= 'ALTER DATABASE app SET search_path = evil, pg_catalog, public;';
in_app('appowner', $evil);

# The trap works: alice (not a superuser) compares each pair of types.
is( in_app(
		'alice',
		"SHOW search_path;\nSELECT 'x'::name = 'x'::name;\n"
		  . join('', map { "SELECT (NULL::$_->[0] = NULL::$_->[1]) IS NULL;\n" } @pairs)),
	"evil, pg_catalog, public\nt" . ("\nt" x @pairs),
	'alice\'s session of app has the search_path of the database');
is( in_app(
		undef, q{SELECT count(*), string_agg(DISTINCT who || ':' || super::text, ',')
		         FROM evil.calls}, 1),
	(@pairs + 1) . '|alice:false',
	'and each "=" she wrote called an operator of evil');
in_app(undef, 'TRUNCATE evil.calls', 1);

# Who called the operators of evil: "postgres:true,..."; '' for no one.
my $calls = q{SELECT coalesce(string_agg(who || ':' || super::text, ',' ORDER BY at), '')
              FROM evil.calls};

my $offset = -s $boot->logfile;
$boot->restart;
ok( $boot->poll_query_until(
		'postgres', qq{
SELECT string_agg(n || ':' || role || '\@' || database, ',' ORDER BY n)
FROM dynbgw_workers WHERE pid IS NOT NULL}, "1:$su\@app,2:alice\@app"),
	'after a restart, workers 1 and 2 are back in app, each as its owner');
ok( log_shows(
		$boot, qr/dynbgw worker 2 of database "app" restored, PID \d+/, $offset),
	'the log says worker 2 of app was restored');
is(in_app(undef, $calls, 1), '',
	'the restore at server start never called the operators of evil');

in_app(undef, 'TRUNCATE evil.calls', 1);
is($boot->safe_psql('postgres',
		'SELECT dynbgw_stop(n => 1) AND dynbgw_stop(n => 2)'),
	't', 'workers 1 and 2 stopped');
is( in_app(
		undef, 'SHOW search_path;
SELECT n, pid IS NOT NULL, error FROM dynbgw_restore() ORDER BY n'),
	"evil, pg_catalog, public\n1|t|\n2|t|",
	'a superuser\'s dynbgw_restore() in a session of app with that search_path restores both'
);
is(in_app(undef, $calls, 1), '', 'and never called the operators of evil');
log_is_clean($boot);
$boot->stop;

###########################################################################
# 4. Roles by OID.  dora saves worker 31, alice saves worker 32 to run as
# erin; dora and erin are dropped and created again, as superusers.  A
# superuser's dynbgw_restore() reports both as errors and runs nothing as
# the new roles.  carol saves worker 33 and is renamed carol2: carol2 sees
# her row, restores it (as carol2) and forgets it.
###########################################################################

$node->safe_psql('postgres', 'GRANT erin TO alice');
is( as_role(
		'dora',
		q{SELECT dynbgw_launch(31, 'INSERT INTO ticks DEFAULT VALUES', naptime => '1 hour',
		                       persist => true) > 0}),
	't',
	'dora saves worker 31');
is( as_role(
		'alice',
		q{SELECT dynbgw_launch(32, 'INSERT INTO ticks DEFAULT VALUES', naptime => '1 hour',
		                       role => 'erin', persist => true) > 0}),
	't',
	'alice saves worker 32, as erin');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 2 FROM ticks WHERE who IN ('dora', 'erin')}),
	'both ran once');
is(as_role(undef, 'SELECT dynbgw_stop(n => 31) AND dynbgw_stop(n => 32)'),
	't', 'and are stopped');
$node->safe_psql(
	'postgres', q{
DROP OWNED BY dora, erin;
DROP ROLE dora; DROP ROLE erin;
CREATE ROLE dora SUPERUSER LOGIN; CREATE ROLE erin SUPERUSER LOGIN;});

my $rows = restore_as(undef);
is(outcome($rows), '31:error,32:error',
	'after DROP ROLE and CREATE ROLE ... SUPERUSER, neither is restored');
like($rows->{31}{error} // '', qr/the role that saved dynbgw worker 31 was dropped/,
	'worker 31: the role that saved it was dropped');
like($rows->{32}{error} // '', qr/does not exist|dropped/,
	'worker 32: its role does not exist');
is($node->safe_psql('postgres', $workers_sql), '', 'no worker runs');
ok( stays(
		$node, q{SELECT count(*) FROM ticks WHERE who IN ('dora', 'erin')}, '2', 1),
	'nothing ran as the new dora or erin');
clean_slate();

save_and_stop('carol', 33);
$node->safe_psql('postgres', 'ALTER ROLE carol RENAME TO carol2');
is(as_role('carol2', 'SELECT n, owner, role FROM dynbgw_definitions'),
	'33|carol2|carol2', 'renamed carol2, she sees her row');
is(outcome(restore_as('carol2')), '33:pid', 'and restores it');
is($node->safe_psql('postgres', $workers_sql),
	'33:carol2@postgres', 'as carol2');
is(as_role('carol2', 'SELECT dynbgw_stop(n => 33, forget => true)'),
	't', 'she stops it and forgets it');
is(as_role(undef, 'SELECT count(*) FROM dynbgw_definitions WHERE n = 33'),
	'0', 'the definition is gone');
clean_slate();

###########################################################################
# 5. "This database".  alice saves worker 41 in app without database =>:
# its row says NULL.  A copy of app made with CREATE DATABASE staging
# TEMPLATE app has the row, and dynbgw_restore() in staging launches the
# worker connected to staging, not to app.
###########################################################################

like(as_role('alice', q{SELECT dynbgw_launch(41, 'SELECT 1', naptime => '1 hour', persist => true)},
		'app'),
	qr/^\d+$/, 'alice saves worker 41 in app, without database =>');
is(as_role(undef, 'SELECT database IS NULL, owner, role FROM dynbgw_definitions WHERE n = 41',
		'app'),
	't|alice|alice', 'its row has database NULL');
is(as_role('alice', 'SELECT dynbgw_stop(n => 41)'), 't', 'alice stops it');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'app'}),
	'no session is left in app');
($ret, $out, $err) = run_as(undef, 'CREATE DATABASE staging TEMPLATE app');
is($ret, 0, 'CREATE DATABASE staging TEMPLATE app') or diag $err;
is(as_role(undef, 'SELECT n, owner FROM dynbgw_definitions', 'staging'),
	'41|alice', 'the copy has the row');
is(outcome(restore_as(undef, 'staging')), '41:pid',
	'dynbgw_restore() in staging launches worker 41');
is($node->safe_psql('postgres', $workers_sql),
	'41:alice@staging', 'connected to staging, as alice');
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(datname, ',') FROM pg_stat_activity
		  WHERE application_name = 'dynbgw worker 41'}),
	'staging',
	'its process is in staging, not in app');
clean_slate('app', 'staging');

###########################################################################
# 6. Numbers are server-wide.  alice saves worker 3 in app and stops it; bob
# launches a worker 3 of his own in reports.  dynbgw_restore() in app
# reports definition 3 as taken, naming bob and reports, without a PID and
# without bob's PID in the text, and leaves bob's worker alone.  Once bob
# stops his worker, the restore launches alice's.
###########################################################################

save_and_stop('alice', 3, 'app');
my $bob_pid = as_role('bob',
	q{SELECT dynbgw_launch(3, 'SELECT 2', naptime => '1 hour')}, 'reports');
like($bob_pid, qr/^\d+$/, 'bob launches a worker 3 of his own in reports');
$rows = restore_as('alice', 'app');
is(outcome($rows), '3:error',
	'dynbgw_restore() in app does not take bob\'s worker for alice\'s');
my $error = $rows->{3}{error} // '';
like($error, qr/dynbgw worker 3 is taken by another worker/, 'worker 3 is taken');
like($error, qr/"bob"/, 'by a worker of bob');
like($error, qr/"reports"/, 'in reports');
unlike($error, qr/\b$bob_pid\b/, 'without bob\'s PID');
is($node->safe_psql('postgres', 'SELECT pid, role, database FROM dynbgw_workers WHERE n = 3'),
	"$bob_pid|bob|reports", 'bob\'s worker 3 runs on');
is(as_role('bob', 'SELECT dynbgw_stop(n => 3)'), 't', 'bob stops his worker 3');
is(outcome(restore_as('alice', 'app')), '3:pid',
	'now dynbgw_restore() in app launches alice\'s worker 3');
is($node->safe_psql('postgres', $workers_sql),
	'3:alice@app', 'as alice, in app');

###########################################################################
# 7. forget from another database.  alice's worker 3 runs, saved in app.
# dynbgw_stop(n => 3, forget => true) in reports stops it, says that
# reports has no saved definition of worker 3, and leaves app's.
###########################################################################

($ret, $out, $err) =
  run_as('alice', 'SELECT dynbgw_stop(n => 3, forget => true)', 'reports');
is($out, 't', 'in reports, alice stops worker 3 with forget => true');
like(
	$err,
	qr/NOTICE:  (?:00000: )?no saved definition of dynbgw worker 3 in database "reports"/,
	'with a notice that reports has no saved definition of it');
registry_is($node, [], 'worker 3 is stopped');
is(as_role(undef, 'SELECT owner FROM dynbgw_definitions WHERE n = 3', 'app'),
	'alice', 'the definition in app is still there');
($ret, $out, $err) =
  run_as('alice', 'SELECT dynbgw_stop(n => 3, forget => true)', 'reports');
is($out, 'f', 'again, with no worker 3 running: false');
like(
	$err,
	qr/NOTICE:  (?:00000: )?no saved definition of dynbgw worker 3 in database "reports"/,
	'and the same notice');
clean_slate('app');

###########################################################################
# 8. persist with if_running => 'skip' while the number is taken saves
# nothing.  bob runs worker 5: alice's launch of 5 returns bob's PID and no
# row is saved.  alice runs worker 6, saved: the same launch again returns
# its PID and leaves the saved row as it was.
###########################################################################

my $pid5 = as_role('bob', q{SELECT dynbgw_launch(5, 'SELECT 1', naptime => '1 hour')});
like($pid5, qr/^\d+$/, 'bob launches worker 5');
is( as_role(
		'alice',
		q{SELECT dynbgw_launch(5, 'SELECT 2', naptime => '1 hour', persist => true,
		                       if_running => 'skip')}),
	$pid5,
	'alice\'s persist, if_running => skip of 5 returns bob\'s PID');
is(as_role(undef, 'SELECT count(*) FROM dynbgw_definitions WHERE n = 5'),
	'0', 'and saves nothing');
is($node->safe_psql('postgres', 'SELECT pid, role FROM dynbgw_workers WHERE n = 5'),
	"$pid5|bob", 'bob\'s worker 5 runs on');

my $launch6 =
  q{SELECT dynbgw_launch(6, 'SELECT 1', naptime => '1 hour', persist => true, if_running => 'skip')};
my $pid6 = as_role('alice', $launch6);
like($pid6, qr/^\d+$/, 'alice launches and saves worker 6');
my $saved6 = 'SELECT owner, command, naptime, saved_at FROM dynbgw_definitions WHERE n = 6';
my $row6 = as_role(undef, $saved6);
is(as_role('alice', $launch6), $pid6, 'the same launch again returns its PID');
is(as_role(undef, $saved6), $row6, 'and leaves the saved row as it was');
clean_slate();

###########################################################################
# 9. A number saved by another role.  bob saved worker 4: alice's persist of
# 4 fails with 42710, naming bob, with a hint to delete the row.  Once a
# superuser deletes it, alice saves 4; then bob cannot, until alice deletes
# her row.  fred saves worker 8 and is dropped: the message says a dropped
# role.
###########################################################################

save_and_stop('bob', 4);
my $launch4 =
  q{SELECT dynbgw_launch(4, 'SELECT 1', naptime => '1 hour', persist => true);};
$err = error_as('alice', $launch4, 'alice cannot save worker 4');
like(
	$err,
	qr/ERROR:  42710: dynbgw worker 4 is saved by role "bob" in this database\n/,
	'with 42710, naming bob');
like($err, qr/\nHINT:  [^\n]*DELETE FROM dynbgw_definitions WHERE n = 4/,
	'the hint says how to free the number');
registry_is($node, [], 'nothing was launched');
is(as_role(undef, 'DELETE FROM dynbgw_definitions WHERE n = 4 RETURNING owner'),
	'bob', 'a superuser deletes bob\'s row');
like(as_role('alice', $launch4), qr/^\d+$/, 'now alice saves worker 4');
is(as_role('alice', 'SELECT dynbgw_stop(n => 4)'), 't', 'and stops it');
$err = error_as('bob', $launch4, 'bob cannot save worker 4 now');
like(
	$err,
	qr/ERROR:  42710: dynbgw worker 4 is saved by role "alice" in this database\n/,
	'with 42710, naming alice');
is(as_role('alice', 'DELETE FROM dynbgw_definitions WHERE n = 4 RETURNING owner'),
	'alice', 'alice deletes her row');
like(as_role('bob', $launch4), qr/^\d+$/, 'now bob saves worker 4');
clean_slate();

save_and_stop('fred', 8);
$node->safe_psql('postgres', 'DROP OWNED BY fred; DROP ROLE fred');
$err = error_as('alice',
	q{SELECT dynbgw_launch(8, 'SELECT 1', naptime => '1 hour', persist => true);},
	'alice cannot save worker 8, saved by fred, dropped since');
like(
	$err,
	qr/ERROR:  42710: dynbgw worker 8 is saved by a dropped role \(OID \d+\) in this database\n/,
	'with 42710: a dropped role, by OID');
clean_slate();

###########################################################################
# 10. A cancel is not swallowed.  Worker 7 is saved to run in database
# slowdb; another session renames slowdb in an open transaction, which
# holds a lock on it that a connecting worker waits for.  So
# dynbgw_restore() waits in the launch of worker 7 for as long as the test
# wants.  Its session is cancelled there, once with pg_cancel_backend()
# once seen waiting, and once by statement_timeout = '2s': the call fails
# with 57014 and returns no row (before, the cancel became worker 7's
# error and the call went on).  Nothing of worker 7 is left; without the
# lock it is restored as usual.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE slowdb');
my $slowdb = $node->safe_psql('postgres',
	q{SELECT oid FROM pg_database WHERE datname = 'slowdb'});
is( as_role(
		undef,
		q{SELECT dynbgw_launch(7, 'SELECT 1', naptime => '1 hour', database => 'slowdb',
		                       persist => true) > 0
		     AND dynbgw_stop(n => 7)}),
	't',
	'worker 7 saved, to run in slowdb, and stopped');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'slowdb'}),
	'no session is left in slowdb');
my $holder = $node->background_psql('postgres', on_error_stop => 0);
my $failed;
($out, $failed) =
  $holder->query('BEGIN; ALTER DATABASE slowdb RENAME TO slowdb_held;');
ok(!$failed, 'another session holds a lock on slowdb') or diag $holder->{stderr};

my $restorer = $node->background_psql('postgres', on_error_stop => 0);
$restorer->set_query_timer_restart;
my $restorer_pid = $restorer->query_safe('SELECT pg_backend_pid()');
$restorer->query_safe('\set VERBOSITY verbose');

# The restorer's dynbgw_restore() waits, its launch of worker 7 held up by
# the lock on slowdb (its own wait or the worker's).
my $waits = qq{
SELECT a.state = 'active'
       AND EXISTS (SELECT FROM pg_locks l
                   WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass
                     AND l.objid = $slowdb AND NOT l.granted)
FROM pg_stat_activity a WHERE a.pid = $restorer_pid};

for my $how ('pg_cancel_backend', 'statement_timeout')
{
	$restorer->{stderr} = '';
	$restorer->query_until(
		qr/restoring/,
		"\\echo restoring\n"
		  . ($how eq 'statement_timeout' ? "SET statement_timeout = '2s';\n" : '')
		  . "SELECT n, pid, error FROM dynbgw_restore();\n");
	# The timeout may come before a poll would see the wait: only the
	# cancel waits for it.
	if ($how eq 'pg_cancel_backend')
	{
		ok($node->poll_query_until('postgres', $waits),
			"$how: dynbgw_restore() waits in the launch of worker 7");
		is($node->safe_psql('postgres', "SELECT pg_cancel_backend($restorer_pid)"),
			't', 'pg_cancel_backend() of its session');
	}
	($out) = $restorer->query("RESET statement_timeout; SELECT 'done'");
	like(
		$restorer->{stderr},
		qr/ERROR:  57014: canceling statement due to (user request|statement timeout)/,
		"$how: the call fails with 57014");
	is($out, 'done', "$how: it returned no row");
	ok($node->poll_query_until('postgres',
			'SELECT count(*) = 0 FROM dynbgw_workers WHERE n = 7'),
		"$how: nothing of worker 7 is left");
}
$holder->query('ROLLBACK');
$holder->quit;
$restorer->quit;
is(outcome(restore_as(undef)), '7:pid',
	'without the lock, dynbgw_restore() launches worker 7');
is($node->safe_psql('postgres', $workers_sql), "7:$su\@slowdb", 'in slowdb');
clean_slate();

###########################################################################
# 11. Entry points.  dynbgw_launch_function() refuses dynbgw's own
# processes with 42809 (the restore's, and the worker's), allows
# dynbgw_sleep_main, and nothing crashed.
###########################################################################

for my $function (
	'dynbgw_restore_launcher_main', 'dynbgw_worker_main',
	'dynbgw_restore_database_main')
{
	$err = error_as(undef,
		"SELECT dynbgw_launch_function(9, 'dynbgw', '$function', 0, 'postgres');",
		"dynbgw_launch_function() refuses $function");
	like(
		$err,
		qr/ERROR:  42809: function "$function" in library "dynbgw" is not a background worker entry point/,
		'with 42809');
	# What the refusal should have prevented, if it did not.
	my @ignored = $node->psql('postgres', 'SELECT dynbgw_stop(n => 9)');
}
ok($node->poll_query_until('postgres', 'SELECT 1', '1'), 'a simple query works');
my $sleeper = as_role(undef,
	q{SELECT dynbgw_launch_function(9, 'dynbgw', 'dynbgw_sleep_main', 0, 'postgres')});
like($sleeper, qr/^\d+$/, 'dynbgw_sleep_main is launched');
is(as_role(undef, 'SELECT dynbgw_stop(n => 9)'), 't', 'and stopped');
unlike(slurp_file($node->logfile), qr/terminated by signal/,
	'no server process was terminated by a signal');

log_is_clean($node);
$node->stop;

done_testing();

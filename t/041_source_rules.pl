# The rules of dynbgw's source that a reader relies on, checked in the
# source itself.  No server.
#
# - Only dynbgw_slot.c and dynbgw_slot_read.c take the registry lock and
#   reach a slot; only dynbgw_slot.c (and dynbgw_registry.c, which makes the
#   registry) writes to the registry.  So "nothing allocates, errors or does
#   I/O under the lock" and the state machine can be read in those files.
# - Only dynbgw_compat.h and dynbgw_compat.c test PG_VERSION_NUM.
# - No header has a static variable: each file would get its own copy.
# - docs/design.md's table of the slot's state machine allows, state for
#   state, what the code's dynbgw_allowed_from[] allows.
#
# The checker is run on broken copies as well, so that it is seen to fail.

use strict;
use warnings;

use Test::More;

my %may_lock = map { $_ => 1 } qw(dynbgw.h dynbgw_slot.c dynbgw_slot_read.c);
my %may_reach = (%may_lock, 'dynbgw_registry.c' => 1);
my %may_write = map { $_ => 1 } qw(dynbgw_slot.c dynbgw_registry.c);
my %may_test_version = map { $_ => 1 } qw(dynbgw_compat.h dynbgw_compat.c);

my $assignment = qr/\s*(?:[-+*\/|&]?=(?!=)|\+\+|--)/;

# The problems of one file, given its name and text.
sub problems
{
	my ($name, $text) = @_;
	my @p;

	# Comments say what the rules are; only code is held to them.
	$text =~ s{/\*.*?\*/}{}gs;

	push @p, "$name takes the registry lock"
	  if !$may_lock{$name}
	  && $text =~
	  /\b(?:dynbgw_lock|dynbgw_unlock)\s*\(|LWLock(?:\w*Acquire\w*|Release)\s*\(\s*&\s*(?:dynbgw_)?reg->lock/;
	push @p, "$name reaches a slot"
	  if !$may_reach{$name} && $text =~ /->slots\s*\[|\bdynbgw_slot_at\s*\(/;
	push @p, "$name writes to the registry"
	  if !$may_write{$name}
	  && $text =~
	  /(?:\b(?:dynbgw_)?reg->[\w.\[\]]+|\bslot->[\w.\[\]]+)$assignment/;
	push @p, "$name tests PG_VERSION_NUM"
	  if !$may_test_version{$name} && $text =~ /\bPG_VERSION_NUM\b/;
	push @p, "$name has a static variable"
	  if $name =~ /\.h$/ && $text =~ /^\s*static\s+(?!inline\b)[^;{]*?[=;]/m;
	return @p;
}

# A file's text.
sub slurp
{
	local (@ARGV, $/) = @_;
	return <>;
}

my @files = (glob('dynbgw*.c'), glob('dynbgw*.h'));
ok(scalar(grep { $_ eq 'dynbgw_slot.c' } @files), 'the sources are here');
my @found = map { problems($_, slurp($_)) } @files;
is_deeply(\@found, [], 'the sources keep the rules')
  or diag(join("\n", @found));

# Broken copies: each must be caught.
my %broken = (
	'a lock outside the lifecycle' =>
	  [ 'dynbgw.c', "LWLockAcquire(&dynbgw_reg->lock, LW_SHARED);\n" ],
	'a lock through the helper' =>
	  [ 'dynbgw_worker.c', "\tdynbgw_lock(LW_EXCLUSIVE);\n" ],
	'a slot reached by index' =>
	  [ 'dynbgw_status.c', "DynbgwSlot *s = &reg->slots[n - 1];\n" ],
	'a field written by the worker' =>
	  [ 'dynbgw_worker.c', "\tmy_slot->pid = 0;\n\tslot->pid = 0;\n" ],
	'a counter bumped by a reader' =>
	  [ 'dynbgw_slot_read.c', "\tslot->runs++;\n" ],
	'a registry field written elsewhere' =>
	  [ 'dynbgw_launch_protocol.c', "\tdynbgw_reg->last_generation = 1;\n" ],
	'a version test in a .c file' =>
	  [ 'dynbgw_command.c', "#if PG_VERSION_NUM >= 180000\n#endif\n" ],
	'a static variable in a header' =>
	  [ 'dynbgw.h', "static int counter;\n" ],
	'a static variable in a header, initialized' =>
	  [ 'dynbgw_compat.h', "static void *arg = NULL;\n" ],);
for my $what (sort keys %broken)
{
	my ($name, $code) = @{ $broken{$what} };
	ok(scalar problems($name, slurp($name) . $code), "caught: $what");
}

# docs/design.md's table of transitions allows what the code's
# dynbgw_allowed_from[] allows, state for state.
sub code_transitions
{
	my ($code) = @_;
	my ($table) = $code =~ /dynbgw_allowed_from\[\][^=]*=\s*\{(.*?)\};/s;
	my %allowed;
	return \%allowed unless defined $table;
	$table =~ s{/\*.*?\*/}{}gs;
	while ($table =~ /\[DYNBGW_(\w+)\]\s*=\s*([^,\[]*)/g)
	{
		my ($name, $states) = (lc $1, $2);
		$name = $name eq 'free_slot' ? 'free' : $name =~ s/_/ /gr;
		$allowed{$name}{$_} = 1 for $states =~ /IN\(DYNBGW_(\w+)\)/g;
	}
	return \%allowed;
}

sub design_transitions
{
	my ($doc) = @_;
	my %allowed;
	my @columns;
	for my $line (split /\n/, $doc)
	{
		my @cells = map { s/^\s+|\s+$//gr } split /\|/, $line;
		shift @cells;
		if (@cells > 2 && $cells[0] eq 'state' && $cells[1] eq 'reserve')
		{
			@columns = @cells[ 1 .. $#cells ];
		}
		elsif (@columns && @cells > 2 && $cells[0] =~ /^`([A-Z]+)`$/)
		{
			my $state = $1;
			for my $i (0 .. $#columns)
			{
				$allowed{ $columns[$i] }{$state} = 1
				  if $cells[ $i + 1 ] ne "\x{2014}";
			}
		}
		elsif (@columns && $line !~ /^\|/) { last; }
	}
	return \%allowed;
}

{
	my $code = slurp('dynbgw_slot.c');
	my $doc = slurp('docs/design.md');
	utf8::decode($doc);
	my $from_code = code_transitions($code);
	ok(scalar(keys %$from_code) >= 12,
		'dynbgw_allowed_from[] has the transitions');
	is_deeply(design_transitions($doc),
		$from_code, 'docs/design.md allows what the code allows');
	(my $wrong = $code) =~
	  s/\[DYNBGW_CLAIM\] = IN\(DYNBGW_STARTING\) \|/[DYNBGW_CLAIM] =/;
	isnt($wrong, $code, 'a transition can be changed');
	ok(!eq_hash(design_transitions($doc), code_transitions($wrong)),
		'caught: a table that differs from the code');
}

# And what is allowed stays allowed.
is_deeply(
	[
		problems(
			'dynbgw.h', "static inline int\nf(void)\n{\n\treturn 0;\n}\n")
	],
	[],
	'a static inline function in a header is no variable');
is_deeply(
	[ problems('dynbgw_status.c', "\tif (slot->pid == 0)\n\t\treturn;\n") ],
	[], 'a comparison is no write');

done_testing();

# META.json, what PGXN reads of a release: valid under the PGXN Meta Spec
# 1.0 (the parts a validator checks: required keys, semantic versions,
# license names, prereq phases and relations, resources, tags), every file
# it names present, and its versions those of dynbgw.control.  No server.
#
# The checker is run on broken copies as well, so that it is seen to fail.

use strict;
use warnings;

use JSON::PP;
use Test::More;

my $semver = qr/^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)
				 (-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/x;
my %licenses = map { $_ => 1 } qw(agpl_3 apache_1_1 apache_2_0 artistic_1
  artistic_2 bsd freebsd gfdl_1_2 gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1
  lgpl_3_0 mit mozilla_1_0 mozilla_1_1 openssl perl_5 postgresql qpl_1_0
  ssleay sun zlib open_source restricted unrestricted unknown);
my %top = map { $_ => 1 } qw(name abstract description version maintainer
  license provides prereqs resources generated_by meta-spec tags no_index
  release_status);
my %phases = map { $_ => 1 } qw(configure build test runtime develop);
my %relations = map { $_ => 1 } qw(requires recommends suggests conflicts);

# A prereq's version: 0 (any), a semantic version, or a range of them.
sub version_or_range
{
	my ($v) = @_;
	return 1 if defined $v && $v eq '0';
	for my $part (split /\s*,\s*/, $v // '')
	{
		return 0 unless $part =~ /^(?:[<>]=?|==|!=)?\s*(.+)$/ && $1 =~ $semver;
	}
	return length($v // '') > 0;
}

# The spec's rules for the keys dynbgw uses, and the files and control
# versions it must agree with; returns the problems found.
sub meta_problems
{
	my ($meta, $control_version) = @_;
	my @p;
	my $str = sub { defined $_[0] && !ref $_[0] && length $_[0] };

	for my $k (qw(name abstract version maintainer license provides meta-spec))
	{
		push @p, "missing $k" unless exists $meta->{$k};
	}
	push @p, "unknown key $_" for grep { !$top{$_} && !/^x_/i } keys %$meta;
	push @p, 'name must be a name' unless ($meta->{name} // '') =~ /^[A-Za-z0-9_-]{2,}$/;
	push @p, 'abstract must be text' unless $str->($meta->{abstract});
	push @p, 'version must be semantic' unless ($meta->{version} // '') =~ $semver;
	my @maint = ref $meta->{maintainer} eq 'ARRAY' ? @{ $meta->{maintainer} } : ($meta->{maintainer});
	push @p, 'maintainer must be text' if !@maint || grep { !$str->($_) } @maint;
	my @lic = ref $meta->{license} eq 'ARRAY' ? @{ $meta->{license} } : ($meta->{license});
	push @p, 'license must be a known name'
	  if ref $meta->{license} ne 'HASH' && (!@lic || grep { !$licenses{ $_ // '' } } @lic);
	push @p, 'meta-spec version must be 1.0.x'
	  unless ($meta->{'meta-spec'}{version} // '') =~ /^1\.0\.[0-9]+$/;

	my $provides = $meta->{provides};
	if (ref $provides eq 'HASH' && %$provides)
	{
		for my $ext (sort keys %$provides)
		{
			my $e = $provides->{$ext};
			push @p, "provides $ext: version must be semantic"
			  unless ($e->{version} // '') =~ $semver;
			for my $f (grep { defined $e->{$_} } qw(file docfile))
			{
				push @p, "provides $ext: no file $e->{$f}" unless -f $e->{$f};
			}
			push @p, "provides $ext: file is required" unless defined $e->{file};
		}
	}
	else
	{
		push @p, 'provides must name an extension';
	}

	while (my ($phase, $rels) = each %{ $meta->{prereqs} // {} })
	{
		push @p, "unknown prereq phase $phase" unless $phases{$phase};
		while (my ($rel, $reqs) = each %$rels)
		{
			push @p, "unknown prereq relation $rel" unless $relations{$rel};
			push @p, "prereq $_: bad version $reqs->{$_}"
			  for grep { !version_or_range($reqs->{$_}) } keys %$reqs;
		}
	}
	my $res = $meta->{resources} // {};
	push @p, "unknown resource $_"
	  for grep { !/^(homepage|bugtracker|repository)$/ && !/^x_/i } keys %$res;
	push @p, 'tags must be short texts'
	  if exists $meta->{tags}
	  && (ref $meta->{tags} ne 'ARRAY'
		|| grep { !$str->($_) || length $_ > 255 } @{ $meta->{tags} });

	# The release is the extension version as major.minor.patch: 1.1 is
	# 1.1.0, 1.1.1 is itself.
	my $expected = $control_version =~ /^\d+\.\d+$/ ? "$control_version.0" : $control_version;
	push @p, "version $meta->{version} is not $expected from dynbgw.control"
	  unless ($meta->{version} // '') eq $expected;
	push @p, "provides dynbgw version is not $expected from dynbgw.control"
	  unless ($provides->{dynbgw}{version} // '') eq $expected;
	return @p;
}

sub slurp
{
	my ($file) = @_;
	open my $fh, '<', $file or die "could not open $file: $!";
	local $/;
	return scalar <$fh>;
}

my ($control_version) =
  slurp('dynbgw.control') =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $control_version, "dynbgw.control has a default_version");
my $meta = JSON::PP->new->decode(slurp('META.json'));
my @problems = meta_problems($meta, $control_version);
is_deeply(\@problems, [], 'META.json is valid and matches dynbgw.control')
  or diag(join("\n", @problems));

# Broken copies: each must be caught.
my %broken = (
	'a two-part version' => sub { $_[0]{version} = '1.1' },
	'a version behind the control file' => sub { $_[0]{version} = '1.0.0' },
	'no license' => sub { delete $_[0]{license} },
	'an unknown license' => sub { $_[0]{license} = 'mine' },
	'a missing file' => sub { $_[0]{provides}{dynbgw}{file} = 'nowhere.sql' },
	'a bad range' => sub { $_[0]{prereqs}{runtime}{requires}{PostgreSQL} = '>= 13' },
	'an unknown key' => sub { $_[0]{homepage} = 'x' },
	'meta-spec 2' => sub { $_[0]{'meta-spec'}{version} = '2.0.0' },);
for my $what (sort keys %broken)
{
	my $copy = JSON::PP->new->decode(JSON::PP->new->encode($meta));
	$broken{$what}->($copy);
	ok(scalar meta_problems($copy, $control_version), "caught: $what");
}

done_testing();

#!/usr/bin/env perl
# The include rule of docs/architecture.md, checked: every library file (core/, autograd/, nn/, cuda/,
# hcgrad.h) belongs to one layer, and includes only headers of the layers its layer may include.
#
#   perl tests/check_layers.pl --rules docs/architecture.md --root .
#       prints each violation as "<file>:<line>: <what>" and exits 1 if there is any, 0 if none.
#   perl tests/check_layers.pl --rules docs/architecture.md --root tests/fixtures/layers_bad \
#                              --expect tests/fixtures/layers_bad/expected.txt
#       the self-test: exits 0 only if the check fails and reports every line of the expect file.
#
# The rule is read from docs/architecture.md itself (the tables between the "layer-rule" and
# "layer-exceptions" markers), so the document and the check cannot disagree. In the "files" column a
# pattern in backquotes names a path from the repository root; `*` matches within one folder. A file named
# without `*` belongs to that row even when a pattern of another row matches it too.
# Also refused: quoted includes that are not "hcgrad/...", i.e. anything from tests/, examples/, tools/ or
# bench/, and <doctest...>; an include of "hcgrad/<path>" that is no file of any layer; an exception that
# no longer matches an include (its row must go).
use strict;
use warnings;
use File::Find;

my ($rules_file, $root, $expect_file);
while (@ARGV) {
  my $arg = shift @ARGV;
  if ($arg eq '--rules') { $rules_file = shift @ARGV; }
  elsif ($arg eq '--root') { $root = shift @ARGV; }
  elsif ($arg eq '--expect') { $expect_file = shift @ARGV; }
  else { die "check_layers: unknown argument '$arg'\n"; }
}
die "usage: check_layers.pl --rules docs/architecture.md --root DIR [--expect FILE]\n"
  unless defined $rules_file && defined $root;
$root =~ s{(?<=.)/+$}{};

# ---- the rule, from the document ----
open(my $doc, '<', $rules_file) or die "check_layers: cannot read $rules_file: $!\n";
my (@rows, %allowed, %exceptions, $section);
while (my $line = <$doc>) {
  if ($line =~ /<!--\s*layer-rule\s*-->/) { $section = 'rule'; next; }
  if ($line =~ /<!--\s*layer-exceptions\s*-->/) { $section = 'exceptions'; next; }
  if ($line =~ /<!--\s*end\s*-->/) { $section = undef; next; }
  next unless defined $section && $line =~ /^\s*\|/;
  my @cells = map { s/^\s+|\s+$//gr } split(/\|/, $line =~ s/^\s*\||\|\s*$//gr);
  next if $cells[0] =~ /^-+$/ || $cells[0] =~ /^(layer|file)$/i;  # separator and header rows
  if ($section eq 'rule') {
    my ($layer, $files, $may) = @cells;
    $layer =~ s/\W//g;
    my @patterns = $files =~ /`([^`]+)`/g;
    die "check_layers: layer '$layer' names no files in $rules_file\n" unless @patterns;
    push @rows, { layer => $layer, patterns => \@patterns };
    $allowed{$layer} = { map { $_ => 1 } grep { length } split(/[\s,]+/, $may =~ s/[^\w\s,]//gr) };
  } else {
    my ($file) = $cells[0] =~ /`([^`]+)`/;
    my ($target) = $cells[1] =~ /`([^`]+)`/;
    die "check_layers: exception row without `file` and `include`: $line" unless $file && $target;
    $exceptions{"$file\t$target"} = 0;  # how often it was used
  }
}
close $doc;
die "check_layers: no layer table (<!-- layer-rule --> ... <!-- end -->) in $rules_file\n" unless @rows;
for my $layer (keys %allowed) {
  for my $other (keys %{ $allowed{$layer} }) {
    die "check_layers: layer '$layer' may include '$other', which is no layer\n" unless exists $allowed{$other};
  }
}

# The layer of a path from the repository root, or undef. Names without `*` come first.
sub glob_regex { my $p = quotemeta(shift); $p =~ s/\\\*/[^\/]*/g; return qr/^$p$/; }
my (%exact, @globs);
for my $row (@rows) {
  for my $p (@{ $row->{patterns} }) {
    if ($p =~ /\*/) { push @globs, [glob_regex($p), $row->{layer}, $p]; }
    else { $exact{$p} = $row->{layer}; }
  }
}
my @problems;
sub layer_of {
  my ($path) = @_;
  return $exact{$path} if exists $exact{$path};
  my @hits = grep { $path =~ $_->[0] } @globs;
  push @problems, "$path: matched by more than one pattern (" . join(', ', map { "`$_->[2]`" } @hits) . ")"
    if @hits > 1;
  return @hits ? $hits[0][1] : undef;
}

# ---- the files ----
my @files;
for my $dir (qw(core autograd nn cuda)) {
  next unless -d "$root/$dir";
  find({ no_chdir => 1, wanted => sub {
    push @files, substr($File::Find::name, length($root) + 1) if -f $_ && /\.(h|hpp|cpp|cc|cu|cuh)$/;
  } }, "$root/$dir");
}
push @files, 'hcgrad.h' if -f "$root/hcgrad.h";
die "check_layers: no library files under $root\n" unless @files;

for my $file (sort @files) {
  my $layer = layer_of($file);
  unless (defined $layer) {
    push @problems, "$file: in no layer; add it to the table in docs/architecture.md";
    next;
  }
  open(my $in, '<', "$root/$file") or die "check_layers: cannot read $file: $!\n";
  while (my $line = <$in>) {
    next unless $line =~ /^\s*#\s*include\s*([<"])([^">]+)[">]/;
    my ($quote, $target) = ($1, $2);
    if ($target =~ m{^hcgrad/(.+)$}) {
      my $path = $1;
      my $to = layer_of($path);
      if (!defined $to) {
        push @problems, "$file:$.: includes \"$target\", which is no library file of any layer";
      } elsif (!$allowed{$layer}{$to}) {
        if (exists $exceptions{"$file\t$target"}) { $exceptions{"$file\t$target"}++; next; }
        push @problems, "$file:$.: $layer may not include \"$target\" ($to)";
      }
    } elsif ($quote eq '"') {
      push @problems, "$file:$.: includes \"$target\"; library files include only hcgrad's own headers, as "
                    . "\"hcgrad/<folder>/<file>\", never tests/, examples/, tools/ or bench/";
    } elsif ($target =~ m{^(doctest|tests/|examples/|tools/|bench/)}) {
      push @problems, "$file:$.: includes <$target>, which is test or example code";
    }
  }
  close $in;
}
for my $key (sort keys %exceptions) {
  next if $exceptions{$key};
  my ($file, $target) = split(/\t/, $key);
  push @problems, "$file: the exception for \"$target\" is no longer used; delete its row in docs/architecture.md"
    if grep { $_ eq $file } @files;
}

# ---- the verdict ----
if (defined $expect_file) {
  open(my $ex, '<', $expect_file) or die "check_layers: cannot read $expect_file: $!\n";
  my @expected = grep { /\S/ && !/^#/ } map { s/\s+$//r } <$ex>;
  close $ex;
  my %found = map { $_ => 1 } @problems;
  my @missed = grep { !$found{$_} } @expected;
  print "found: $_\n" for @problems;
  print "NOT FOUND: $_\n" for @missed;
  if (!@problems) { print "check_layers self-test: the check passed a tree with bad includes\n"; exit 1; }
  if (@missed) { print "check_layers self-test: ", scalar(@missed), " expected violation(s) not reported\n"; exit 1; }
  print "check_layers self-test: all ", scalar(@expected), " expected violations reported\n";
  exit 0;
}
if (@problems) {
  print "$_\n" for @problems;
  print scalar(@problems), " include(s) break the layer rule of docs/architecture.md\n";
  exit 1;
}
print "check_layers: ", scalar(@files), " files follow the layer rule\n";
exit 0;

#!/usr/bin/perl
# Rewrites one cuda/*.cu file into host C++ for the emulation (tests/emulation/cuda_emulation.h):
#   kernel<Args><<<grid, threads, shared, stream>>>(args);  ->  ::emu::launch({grid, ...}, [&] { kernel<Args>(args); });
#   extern __shared__ __align__(16) unsigned char name[];    ->  unsigned char* name = ::emu::dynamic_shared();
#   namespace hcgrad::cuda {                                  ->  namespace hcgrad::emulated_cuda { using namespace ::hcgrad::cuda;
# Usage: perl cuda_to_host.pl in.cu out.cpp
use strict;
use warnings;
my ($in, $out) = @ARGV;
open(my $source, '<', $in) or die "cuda_to_host: cannot read $in: $!";
my $code = do { local $/; <$source> };
my $args = qr/(\((?:[^()]++|(?-1))*\))/;
$code =~ s/([A-Za-z_][\w:]*(?:<[^<>;(){}]*>)?)\s*<<<(.*?)>>>\s*$args/::emu::launch({$2}, [&] { $1$3; })/gs;
$code =~ s/extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?unsigned\s+char\s+(\w+)\[\];/unsigned char* $1 = ::emu::dynamic_shared();/g;
$code =~ s/namespace hcgrad::cuda \{/namespace hcgrad::emulated_cuda {\nusing namespace ::hcgrad::cuda;/g;
$code =~ s/\}  \/\/ namespace hcgrad::cuda/}  \/\/ namespace hcgrad::emulated_cuda/g;
open(my $target, '>', $out) or die "cuda_to_host: cannot write $out: $!";
print $target "// Generated from $in by tests/emulation/cuda_to_host.pl: do not edit.\n", $code;

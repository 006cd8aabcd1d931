use IO::Socket::INET; use Sys::Hostname;
my $s = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) { print $c "hello from " . hostname() . "\n"; close $c; }

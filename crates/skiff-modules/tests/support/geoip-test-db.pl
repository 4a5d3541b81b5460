#!/usr/bin/perl
# Writes GeoLite2-City.mmdb and GeoLite2-ASN.mmdb into the folder given, with MaxMind's own
# database writer (Debian's libmaxmind-db-writer-perl), for the geoip step's tests.
#
# MaxMind's test databases are not available offline, so these hold, in the real
# GeoIP2-City / GeoLite2-ASN record layout, the entries of those test databases that the
# Filebeat corpus (shared/corpus/filebeat-modules) uses, with the values its expected
# documents show. Networks are the ones of MaxMind's test data where the corpus shows two
# addresses of one network (81.2.69.142/31, 216.160.83.56/29, ...).
use strict;
use warnings;
use utf8;
use MaxMind::DB::Writer::Tree;

my $dir = shift or die "usage: $0 OUTPUT_DIR\n";

my %types = (
    city                           => 'map',
    continent                      => 'map',
    country                        => 'map',
    location                       => 'map',
    names                          => 'map',
    subdivisions                   => [ 'array', 'map' ],
    code                           => 'utf8_string',
    en                             => 'utf8_string',
    iso_code                       => 'utf8_string',
    geoname_id                     => 'uint32',
    latitude                       => 'double',
    longitude                      => 'double',
    time_zone                      => 'utf8_string',
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
);

sub tree {
    my ($type) = @_;
    return MaxMind::DB::Writer::Tree->new(
        ip_version            => 6,
        record_size           => 28,
        database_type         => $type,
        languages             => ['en'],
        description           => { en => "$type test database written by skiff's tests" },
        map_key_type_callback => sub { $types{ $_[0] } },
    );
}

sub place {
    my (%p) = @_;
    my %r = (
        continent => { code => $p{continent_code}, names => { en => $p{continent} } },
        country   => { iso_code => $p{country_code}, names => { en => $p{country} } },
        location  => { latitude => $p{lat}, longitude => $p{lon} },
    );
    $r{city} = { names => { en => $p{city} } } if $p{city};
    $r{subdivisions} = [ { iso_code => $p{region_code}, names => { en => $p{region} } } ]
        if $p{region};
    $r{location}{time_zone} = $p{time_zone} if $p{time_zone};
    return \%r;
}

my $gb = place(
    continent_code => 'EU', continent => 'Europe', country_code => 'GB',
    country => 'United Kingdom', region_code => 'HRT', region => 'Hertfordshire',
    city => 'Radwell', lat => 52.0037, lon => -0.2014, time_zone => 'Europe/London',
);
my $se = place(
    continent_code => 'EU', continent => 'Europe', country_code => 'SE',
    country => 'Sweden', region_code => 'E', region => 'Östergötland County',
    city => 'Linköping', lat => 58.4167, lon => 15.6167, time_zone => 'Europe/Stockholm',
);
my $us = place(
    continent_code => 'NA', continent => 'North America', country_code => 'US',
    country => 'United States', region_code => 'WA', region => 'Washington',
    city => 'Quilcene', lat => 47.8317, lon => -122.8621, time_zone => 'America/Los_Angeles',
);
my $cn = place(
    continent_code => 'AS', continent => 'Asia', country_code => 'CN', country => 'China',
    lat => 34.7732, lon => 113.722,
);
my $bt = place(
    continent_code => 'AS', continent => 'Asia', country_code => 'BT', country => 'Bhutan',
    lat => 27.5, lon => 90.5,
);
my $dk = place(
    continent_code => 'EU', continent => 'Europe', country_code => 'DK', country => 'Denmark',
    lat => 55.7123, lon => 12.0564,
);

my $city = tree('GeoLite2-City');
$city->insert_network( '81.2.69.142/31',   $gb );
$city->insert_network( '81.2.69.192/28',   $gb );
$city->insert_network( '89.160.20.112/28', $se );
$city->insert_network( '89.160.20.128/25', $se );
$city->insert_network( '216.160.83.56/29', $us );
$city->insert_network( '175.16.199.0/24',  $cn );
$city->insert_network( '67.43.156.0/24',   $bt );
$city->insert_network( '2a02:cf40::/29',   $dk );

my $asn = tree('GeoLite2-ASN');
my %as = (
    '1.128.0.0/11'     => [ 1221,  'Telstra Pty Ltd' ],
    '81.2.69.0/24'     => [ 20712, 'Andrews & Arnold Ltd' ],
    '89.160.0.0/17'    => [ 29518, 'Bredband2 AB' ],
    '175.16.199.0/24'  => [ 4837,  'CHINA UNICOM China169 Backbone' ],
    '216.160.83.56/29' => [ 209,   'CENTURYLINK-US-LEGACY-QWEST' ],
    '2a02:cf40::/29'   => [ 62121, 'Christian Ebsen ApS' ],
);
while ( my ( $net, $v ) = each %as ) {
    $asn->insert_network( $net,
        { autonomous_system_number => $v->[0], autonomous_system_organization => $v->[1] } );
}
# MaxMind's test data has this network's number without an organization.
$asn->insert_network( '67.43.156.0/24', { autonomous_system_number => 35908 } );

for ( [ $city, 'GeoLite2-City.mmdb' ], [ $asn, 'GeoLite2-ASN.mmdb' ] ) {
    my ( $t, $name ) = @$_;
    open my $fh, '>:raw', "$dir/$name" or die "$dir/$name: $!\n";
    $t->write_tree($fh);
    close $fh or die "$dir/$name: $!\n";
}

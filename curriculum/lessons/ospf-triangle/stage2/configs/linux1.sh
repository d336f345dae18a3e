#!/bin/sh
# linux1 reaches the routers' loopbacks and links through r1 (eth1 is 10.1.0.2/24).
set -e
for net in 10.12.0.0/24 10.23.0.0/24 10.31.0.0/24 1.1.1.1/32 2.2.2.2/32 3.3.3.3/32 192.0.2.0/24; do
    ip route replace "$net" via 10.1.0.1 dev eth1
done

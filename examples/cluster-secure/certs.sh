#!/usr/bin/env bash
# Makes the certificates of the secure sample cluster with openssl, into .dm-cluster/certs:
# a CA, the masters' certificate (CN dm-master; it serves the API and the etcd members and is
# presented to other masters and etcd peers), the workers' (CN dm-worker) and an operator's
# (CN dm-admin, for `dm ctl`). In production: one certificate per host, from your own CA, with
# the hosts' names and addresses in subjectAltName; keep the keys 0600.
set -euo pipefail
out=.dm-cluster/certs
mkdir -p "$out" && chmod 700 "$out" && cd "$out"
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=dm sample CA" \
  -keyout ca-key.pem -out ca.pem 2>/dev/null
cert() { # name cn extensions
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
cert master dm-master "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
cert worker dm-worker "extendedKeyUsage=clientAuth"
cert admin dm-admin "extendedKeyUsage=clientAuth"
chmod 600 ./*-key.pem
echo "certificates in $out"

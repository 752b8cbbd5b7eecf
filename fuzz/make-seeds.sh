#!/usr/bin/env bash
# Regenerates the seed corpora from openssl-made throwaway keys (they protect nothing).
set -euo pipefail
cd "$(dirname "$0")"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
kf=corpus/key_file; pk=corpus/public_key
mkdir -p "$kf" "$pk"
gen() { openssl genpkey "$@" 2>/dev/null; }
gen -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$t/rsa.pem"
gen -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/p256.pem"
gen -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$t/p384.pem"
gen -algorithm ED25519 -out "$t/ed.pem"
for k in rsa p256 p384 ed; do
  # A leading byte: 0 = no passphrase, 1 = passphrase "fuzz" (see fuzz_targets/key_file.rs).
  { printf '\0'; cat "$t/$k.pem"; } > "$kf/$k.pkcs8.pem"
  { printf '\0'; openssl pkey -in "$t/$k.pem" -outform DER; } > "$kf/$k.pkcs8.der"
  { printf '\1'; openssl pkcs8 -topk8 -v2 aes-128-cbc -iter 1 -passout pass:fuzz -in "$t/$k.pem"; } > "$kf/$k.aes.p8"
  { printf '\1'; openssl pkcs8 -topk8 -v2 des3 -iter 1 -passout pass:fuzz -in "$t/$k.pem" -outform DER; } > "$kf/$k.des3.der"
  openssl pkey -in "$t/$k.pem" -pubout > "$pk/$k.pem"
  openssl pkey -in "$t/$k.pem" -pubout -outform DER > "$pk/$k.der"
done
{ printf '\0'; openssl rsa -in "$t/rsa.pem" -traditional 2>/dev/null; } > "$kf/rsa.pkcs1.pem"
{ printf '\0'; openssl ec -in "$t/p256.pem" 2>/dev/null; } > "$kf/p256.sec1.pem"
{ printf '\0'; openssl ec -in "$t/p384.pem" -outform DER 2>/dev/null; } > "$kf/p384.sec1.der"
openssl rsa -in "$t/rsa.pem" -RSAPublicKey_out 2>/dev/null > "$pk/rsa.pkcs1.pem"
printf '%s\n' '{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}' > "$pk/ed.jwk"
printf '%s\n' 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl seed' > "$pk/ed.ssh"

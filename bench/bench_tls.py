"""Throwaway TLS material for `bench/run --tls`: a self-signed CA and one server certificate it
signed for the fleet's loopback addresses, made with the `openssl` command.

The certificate names the addresses as IP subjectAltNames, so that every client checks it the
way it checks a real upstream (chain to the CA, then the name against the URL's host) without a
`server_name` override: wsvisor matches an IP-literal host against IP SANs, and so do Node's
`tls` and Python's `ssl`. ECDSA P-256 keys: what current public servers mostly present, and
cheap to handshake when thousands of connections open at once.
"""
import os
import subprocess

DAYS = "2"  # long enough for any run; nothing outlives the output directory


def _openssl(*argv, cwd):
    subprocess.run(["openssl", *argv], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_loopback_ca(directory, hosts):
    """Writes ca.pem, server.pem (certificate chain) and server.key into `directory`.

    hosts: the IPv4 addresses the server listens on. Returns {"ca", "cert", "key"} (absolute
    paths; wsvisor's spec.tls.ca_file is read by the service, not relative to the client)."""
    d = os.path.abspath(directory)
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", DAYS,
             "-subj", "/CN=wsvisor bench throwaway CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=wsvisor bench fleet", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=" + ",".join(f"IP:{h}" for h in hosts) + "\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", DAYS, "-sha256", "-extfile", "server.ext",
             "-out", "server-leaf.pem", cwd=d)
    # The chain the fleet presents: leaf, then the CA (clients trust the CA from their own file;
    # sending it too is what most servers do and costs one certificate in the handshake).
    with open(os.path.join(d, "server.pem"), "w") as out:
        for name in ("server-leaf.pem", "ca.pem"):
            with open(os.path.join(d, name)) as f:
                out.write(f.read())
    os.chmod(os.path.join(d, "server.key"), 0o600)
    os.chmod(os.path.join(d, "ca.key"), 0o600)
    return {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "server.pem"),
            "key": os.path.join(d, "server.key")}

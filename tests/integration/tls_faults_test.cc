// wss:// upstreams with bad, good and demanding certificates: every TLS failure is reported as
// FAILURE_REASON_TLS with a detail that says which failure it was, and the per-endpoint TLS
// options (ca_file, server_name, insecure_skip_verify, client certificate) make the good cases
// HEALTHY.
//
// Certificates are made at test time with the `openssl` command-line tool (Debian `openssl`) in a
// temporary directory; the upstream is tests/support/python_tls_upstream.py (python3-websockets
// behind Python's ssl module), a TLS stack other than ours. Everything is on 127.0.0.1, every wait
// is bounded, and each test prints what it measured.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/test_upstream.h"
#include "support/wsvisor_harness.h"

extern char** environ;

namespace wsvisor::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Generous bound for one failed TLS attempt on a loaded two-core machine: a handshake on loopback
// takes milliseconds, so a detection slower than this is a bug, not load.
constexpr milliseconds kFailureWithin{3000};
constexpr milliseconds kHealthyWithin{3000};

long long millisSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration_cast<milliseconds>(end - start).count();
}

// The certificates of every case, made once per test process (ctest runs each test in its own
// process, and making them takes ~0.2 s).
class Certificates {
 public:
  Certificates() {
    char pattern[] = "/tmp/wsvisor-tls-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    // EC P-256 keys: fast to make. `openssl ca` is used for the expired certificate because the
    // `openssl x509` of Debian 12 (OpenSSL 3.0) cannot backdate (-not_before came in 3.4).
    const std::string script = R"SH(
set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # name, subject
  key $1.key
  openssl req -x509 -new -key $1.key -out $1.pem -days 30 -subj "$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() {  # name, issuer, subject CN, subjectAltName, extendedKeyUsage
  key $1.key
  openssl req -new -key $1.key -out $1.csr -subj "/CN=$3"
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=%s\n' "$4" "$5" > $1.ext
  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -days 30 \
    -extfile $1.ext -out $1.pem 2>/dev/null
}
ca ca "/CN=wsvisor test CA"
ca other-ca "/CN=wsvisor untrusted test CA"
ca client-ca "/CN=wsvisor test client CA"
leaf server ca localhost "IP:127.0.0.1,DNS:localhost" serverAuth
leaf wrong-host ca wrong.example "DNS:wrong.example" serverAuth
leaf untrusted other-ca localhost "IP:127.0.0.1,DNS:localhost" serverAuth
leaf client client-ca wsvisor-client "DNS:wsvisor-client" clientAuth
key self-signed.key
openssl req -x509 -new -key self-signed.key -out self-signed.pem -days 30 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost
# Expired: valid for January 2020 only, signed by the trusted CA.
key expired.key
openssl req -new -key expired.key -out expired.csr -subj /CN=localhost
mkdir -p ca-db/new && : > ca-db/index.txt && echo 01 > ca-db/serial
printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > expired.ext
cat > ca-db/ca.cnf <<'EOF'
[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
new_certs_dir = ca-db/new
serial = ca-db/serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
EOF
openssl ca -batch -notext -config ca-db/ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
  -out expired.pem -startdate 20200101000000Z -enddate 20200201000000Z -extfile expired.ext \
  2>/dev/null
)SH";
    const std::string script_path = dir_ + "/make-certs.sh";
    std::ofstream(script_path) << script;
    const std::string command = "cd '" + dir_ + "' && /bin/sh make-certs.sh > make-certs.log 2>&1";
    const auto started = Clock::now();
    if (std::system(command.c_str()) != 0) {
      std::ifstream log(dir_ + "/make-certs.log");
      std::stringstream text;
      text << log.rdbuf();
      throw std::runtime_error("making test certificates with openssl failed:\n" + text.str());
    }
    std::printf("certificates made with openssl in %lld ms\n", millisSince(started, Clock::now()));
  }
  ~Certificates() { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

Certificates* certificates = nullptr;

// How python_tls_upstream.py behaves beyond serving its certificate.
struct UpstreamOptions {
  std::string client_ca;    // require client certificates signed by this CA ("": none)
  std::string require_sni;  // refuse handshakes that send another SNI name ("": any)
  // Its "threaded" engine, which sends the TLS alert when a handshake fails; the default asyncio
  // engine (python3-websockets) just closes the connection.
  bool alerts;
};
const UpstreamOptions kPlain{"", "", false};
const UpstreamOptions kClientCertRequired{"client-ca", "", false};
const UpstreamOptions kClientCertRequiredWithAlerts{"client-ca", "", true};

class TlsFaultsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certificates = new Certificates(); }
  static void TearDownTestSuite() {
    delete certificates;
    certificates = nullptr;
  }

  static std::string cert(const std::string& name) { return certificates->path(name); }

  // A TLS upstream serving `name`.pem with `name`.key.
  static std::unique_ptr<PythonUpstream> tlsUpstream(const std::string& name,
                                                     const UpstreamOptions& options = kPlain) {
    std::vector<std::string> args = {"--cert", cert(name + ".pem"), "--key", cert(name + ".key")};
    if (!options.client_ca.empty()) {
      args.push_back("--client-ca");
      args.push_back(cert(options.client_ca + ".pem"));
    }
    if (!options.require_sni.empty()) {
      args.push_back("--require-sni");
      args.push_back(options.require_sni);
    }
    if (options.alerts) {
      args.push_back("--engine");
      args.push_back("threaded");
    }
    return std::make_unique<PythonUpstream>(PythonUpstream::Script{"python_tls_upstream.py"}, args);
  }

  // A fast spec for wss://127.0.0.1:PORT/ trusting our test CA unless told otherwise.
  static v1::EndpointSpec tlsSpec(const std::string& id, int port) {
    v1::EndpointSpec spec = fastSpec(id, "wss://127.0.0.1:" + std::to_string(port) + "/");
    spec.mutable_tls()->set_ca_file(cert("ca.pem"));
    return spec;
  }

  // Registers `spec`, waits for its first failure and returns it (reason UNSPECIFIED if none came
  // in time), printing what it measured. The same fault must be reported the same way on the
  // retries too: the failures of the next attempts must carry the same reason and detail.
  v1::Failure firstFailure(const v1::EndpointSpec& spec) {
    constexpr uint32_t kAttempts = 3;
    HealthRecorder watch(wsvisor_.stub());
    const auto start = Clock::now();
    EXPECT_TRUE(wsvisor_.registerEndpoint(spec).ok());
    std::vector<v1::Failure> failures;
    for (uint32_t n = 1; n <= kAttempts; ++n) {
      auto failed = watch.waitFor(
          [&](const v1::HealthEvent& e) {
            return e.endpoint_id() == spec.id() && e.status().consecutive_failures() == n &&
                   e.status().has_last_failure();
          },
          kFailureWithin);
      if (!failed) {
        ADD_FAILURE() << spec.id() << ": failure " << n << " did not come within "
                      << kFailureWithin.count() << " ms";
        return failures.empty() ? v1::Failure{} : failures.front();
      }
      const v1::Failure& failure = failed->event.status().last_failure();
      std::printf(
          "%s: attempt %u %s after %lld ms, health %s, detail \"%s\"\n", spec.id().c_str(), n,
          v1::FailureReason_Name(failure.reason()).c_str(), millisSince(start, failed->at),
          v1::Health_Name(failed->event.status().health()).c_str(), failure.detail().c_str());
      EXPECT_EQ(failed->event.status().health(), v1::HEALTH_UNHEALTHY) << spec.id();
      failures.push_back(failure);
    }
    for (uint32_t n = 1; n < kAttempts; ++n) {
      EXPECT_EQ(failures[n].reason(), failures[0].reason()) << spec.id() << " attempt " << n + 1;
      EXPECT_EQ(failures[n].detail(), failures[0].detail())
          << spec.id() << ": the same fault reported differently on attempt " << n + 1;
    }
    return failures.front();
  }

  // Registers `spec` and expects HEALTHY within kHealthyWithin with no failure on the way.
  void expectHealthy(const v1::EndpointSpec& spec) {
    HealthRecorder watch(wsvisor_.stub());
    const auto start = Clock::now();
    ASSERT_TRUE(wsvisor_.registerEndpoint(spec).ok());
    auto healthy = watch.waitFor(healthIs(spec.id(), v1::HEALTH_HEALTHY), kHealthyWithin);
    v1::Endpoint endpoint;
    ASSERT_TRUE(wsvisor_.getEndpoint(spec.id(), &endpoint).ok());
    ASSERT_TRUE(healthy.has_value())
        << spec.id() << " not HEALTHY within " << kHealthyWithin.count()
        << " ms; last failure: " << endpoint.status().last_failure().ShortDebugString();
    std::printf("%s: HEALTHY %lld ms after registering, last_rtt %lld us\n", spec.id().c_str(),
                millisSince(start, healthy->at),
                static_cast<long long>(endpoint.status().last_rtt().seconds() * 1000000 +
                                       endpoint.status().last_rtt().nanos() / 1000));
    EXPECT_FALSE(endpoint.status().has_last_failure())
        << endpoint.status().last_failure().ShortDebugString();
  }

  InProcessWsvisor wsvisor_;
};

// --- failures: each is FAILURE_REASON_TLS, and the detail names the cause ---------------------

TEST_F(TlsFaultsTest, SelfSignedCertificateIsTlsNamingSelfSigned) {
  auto upstream = tlsUpstream("self-signed");
  const v1::Failure failure = firstFailure(tlsSpec("self-signed", upstream->port()));
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
  EXPECT_NE(failure.detail().find("self-signed certificate"), std::string::npos)
      << failure.detail();
}

TEST_F(TlsFaultsTest, WrongHostNameIsTlsNamingTheHostName) {
  auto upstream = tlsUpstream("wrong-host");
  const v1::Failure failure = firstFailure(tlsSpec("wrong-host", upstream->port()));
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
  // The detail must say that the name did not match (and ideally which name was expected), not
  // merely that verification failed.
  EXPECT_TRUE(failure.detail().find("host") != std::string::npos ||
              failure.detail().find("name") != std::string::npos)
      << "wrong host name is not recognisable from the detail: \"" << failure.detail() << "\"";
}

TEST_F(TlsFaultsTest, ExpiredCertificateIsTlsNamingExpiry) {
  auto upstream = tlsUpstream("expired");
  const v1::Failure failure = firstFailure(tlsSpec("expired", upstream->port()));
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
  EXPECT_NE(failure.detail().find("certificate has expired"), std::string::npos)
      << failure.detail();
}

TEST_F(TlsFaultsTest, CertificateOfAnUntrustedCaIsTlsNamingTheMissingIssuer) {
  auto upstream = tlsUpstream("untrusted");
  const v1::Failure failure = firstFailure(tlsSpec("untrusted-ca", upstream->port()));
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
  EXPECT_NE(failure.detail().find("unable to get local issuer certificate"), std::string::npos)
      << failure.detail();
}

TEST_F(TlsFaultsTest, SystemTrustStoreDoesNotTrustOurTestCa) {
  auto upstream = tlsUpstream("server");
  v1::EndpointSpec spec = tlsSpec("system-store", upstream->port());
  spec.mutable_tls()->clear_ca_file();  // the default: the system trust store
  const v1::Failure failure = firstFailure(spec);
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
  EXPECT_NE(failure.detail().find("unable to get local issuer certificate"), std::string::npos)
      << failure.detail();
}

// TLS 1.3: the client's handshake is complete before the server checks the client certificate;
// the server's refusal arrives as an alert ("certificate required") on the first read.
TEST_F(TlsFaultsTest, MissingClientCertificateIsTlsNamingTheRequiredCertificate) {
  auto upstream = tlsUpstream("server", kClientCertRequiredWithAlerts);
  const v1::Failure failure = firstFailure(tlsSpec("no-client-cert", upstream->port()));
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
  EXPECT_NE(failure.detail().find("certificate required"), std::string::npos)
      << "missing client certificate is not recognisable from the detail: \"" << failure.detail()
      << "\"";
}

// Some servers (Python's asyncio among them) refuse a missing client certificate by closing the
// TCP connection without a TLS alert. The TLS stream then ends without close_notify before the
// WebSocket handshake: still a TLS failure, not a generic network error.
TEST_F(TlsFaultsTest, MissingClientCertificateWithoutAnAlertIsStillTls) {
  auto upstream = tlsUpstream("server", kClientCertRequired);
  const v1::Failure failure = firstFailure(tlsSpec("no-client-cert-eof", upstream->port()));
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS) << failure.detail();
}

TEST_F(TlsFaultsTest, MissingCaFileIsTlsNamingTheFile) {
  auto upstream = tlsUpstream("server");
  v1::EndpointSpec spec = tlsSpec("no-ca-file", upstream->port());
  spec.mutable_tls()->set_ca_file(cert("does-not-exist.pem"));
  const v1::Failure failure = firstFailure(spec);
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
  EXPECT_NE(failure.detail().find("does-not-exist.pem"), std::string::npos) << failure.detail();
}

// All TLS failures side by side on one wsvisor: each is TLS, and no two details are the same, so
// an operator can tell them apart from the status alone.
TEST_F(TlsFaultsTest, EveryTlsFailureHasADistinctDetail) {
  struct Case {
    std::string id;
    std::string cert;
    std::string client_ca;
  };
  const std::vector<Case> cases = {{"self-signed", "self-signed", ""},
                                   {"wrong-host", "wrong-host", ""},
                                   {"expired", "expired", ""},
                                   {"untrusted-ca", "untrusted", ""},
                                   {"no-client-cert", "server", "client-ca"}};
  std::vector<std::unique_ptr<PythonUpstream>> upstreams;
  for (const Case& c : cases) {
    upstreams.push_back(tlsUpstream(c.cert, {c.client_ca, "", /*alerts=*/true}));
  }

  HealthRecorder watch(wsvisor_.stub());
  const auto start = Clock::now();
  for (size_t i = 0; i < cases.size(); ++i) {
    ASSERT_TRUE(wsvisor_.registerEndpoint(tlsSpec(cases[i].id, upstreams[i]->port())).ok());
  }
  std::map<std::string, std::string> detail_of;  // id -> detail
  for (const Case& c : cases) {
    auto failed = watch.waitFor(
        [&](const v1::HealthEvent& e) {
          return e.endpoint_id() == c.id && e.status().has_last_failure();
        },
        kFailureWithin);
    ASSERT_TRUE(failed.has_value()) << c.id << " did not fail";
    const v1::Failure& failure = failed->event.status().last_failure();
    detail_of[c.id] = failure.detail();
    std::printf("%-15s %s after %4lld ms: \"%s\"\n", c.id.c_str(),
                v1::FailureReason_Name(failure.reason()).c_str(), millisSince(start, failed->at),
                failure.detail().c_str());
    EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS) << c.id;
  }
  std::map<std::string, std::vector<std::string>> ids_by_detail;
  for (const auto& [id, detail] : detail_of) ids_by_detail[detail].push_back(id);
  for (const auto& [detail, ids] : ids_by_detail) {
    if (ids.size() < 2) continue;
    std::string names;
    for (const std::string& id : ids) names += " " + id;
    ADD_FAILURE() << "these TLS failures share one detail, \"" << detail
                  << "\", and cannot be told apart:" << names;
  }
}

// --- the options that make TLS work -----------------------------------------------------------

TEST_F(TlsFaultsTest, CaFileMakesTheGoodCertificateHealthy) {
  auto upstream = tlsUpstream("server");
  expectHealthy(tlsSpec("good", upstream->port()));
}

TEST_F(TlsFaultsTest, LocalhostHostNameMatchesItsDnsName) {
  // A machine without /etc/hosts (a bare debootstrap root) cannot resolve localhost at all.
  addrinfo* resolved = nullptr;
  if (getaddrinfo("localhost", nullptr, nullptr, &resolved) != 0) {
    GTEST_SKIP() << "localhost does not resolve on this machine (no /etc/hosts)";
  }
  freeaddrinfo(resolved);
  auto upstream = tlsUpstream("server");
  v1::EndpointSpec spec =
      fastSpec("localhost", "wss://localhost:" + std::to_string(upstream->port()) + "/");
  spec.mutable_tls()->set_ca_file(cert("ca.pem"));
  // localhost may resolve to ::1 first, where nothing listens; wsvisor then tries 127.0.0.1.
  expectHealthy(spec);
}

// server_name is both the SNI sent (the upstream refuses any other) and the verified name.
TEST_F(TlsFaultsTest, ServerNameOverrideIsSentAsSniAndVerified) {
  auto upstream = tlsUpstream("wrong-host", {"", "wrong.example", false});
  v1::EndpointSpec spec = tlsSpec("override", upstream->port());
  spec.mutable_tls()->set_server_name("wrong.example");
  expectHealthy(spec);
}

TEST_F(TlsFaultsTest, ServerNameOverrideAlsoRejectsAMismatch) {
  auto upstream = tlsUpstream("server");  // valid for 127.0.0.1 and localhost only
  v1::EndpointSpec spec = tlsSpec("override-mismatch", upstream->port());
  spec.mutable_tls()->set_server_name("wrong.example");
  const v1::Failure failure = firstFailure(spec);
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
}

TEST_F(TlsFaultsTest, InsecureSkipVerifyAcceptsASelfSignedCertificate) {
  auto upstream = tlsUpstream("self-signed");
  v1::EndpointSpec spec = tlsSpec("insecure", upstream->port());
  spec.mutable_tls()->clear_ca_file();
  spec.mutable_tls()->set_insecure_skip_verify(true);
  expectHealthy(spec);
}

TEST_F(TlsFaultsTest, ClientCertificateMakesMutualTlsHealthy) {
  auto websockets_upstream = tlsUpstream("server", kClientCertRequired);
  auto threaded_upstream = tlsUpstream("server", kClientCertRequiredWithAlerts);
  for (const auto* upstream : {websockets_upstream.get(), threaded_upstream.get()}) {
    v1::EndpointSpec spec = tlsSpec("mtls-" + std::to_string(upstream->port()), upstream->port());
    spec.mutable_tls()->set_client_cert_file(cert("client.pem"));
    spec.mutable_tls()->set_client_key_file(cert("client.key"));
    expectHealthy(spec);
  }
}

TEST_F(TlsFaultsTest, ClientCertificateOfAnotherCaIsRefused) {
  auto upstream = tlsUpstream("server", kClientCertRequiredWithAlerts);
  v1::EndpointSpec spec = tlsSpec("mtls-wrong-ca", upstream->port());
  // Signed by the server CA, which the upstream does not accept for clients.
  spec.mutable_tls()->set_client_cert_file(cert("server.pem"));
  spec.mutable_tls()->set_client_key_file(cert("server.key"));
  const v1::Failure failure = firstFailure(spec);
  EXPECT_EQ(failure.reason(), v1::FAILURE_REASON_TLS);
}

}  // namespace
}  // namespace wsvisor::testing

#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "service/ctl/output_format.h"
#include "wsvisor/v1/supervisor.pb.h"

namespace wsvisor::ctl {

inline constexpr std::string_view kDefaultServer = "127.0.0.1:50051";
// The environment variable that replaces kDefaultServer; `--server` replaces both.
inline constexpr std::string_view kServerEnvironmentVariable = "WSVISOR_SERVER";
// The environment variable naming a bearer-token file; `--token-file` replaces it.
inline constexpr std::string_view kTokenFileEnvironmentVariable = "WSVISOR_TOKEN_FILE";
// Deadline of each unary call. `watch` has none: it runs until interrupted. `probe` has none
// unless --request-timeout is given: the server bounds it by the probe's own timeouts.
inline constexpr std::chrono::seconds kDefaultRequestTimeout{10};

// How wsvisorctl reaches the server: plaintext by default; TLS when any --tls* flag is given.
struct ConnectionOptions {
  bool tls = false;
  std::string tls_ca_file;    // trust these CAs instead of the system's
  std::string tls_cert_file;  // client certificate for mutual TLS (with tls_key_file)
  std::string tls_key_file;
  std::string tls_server_name;  // the name to check the server's certificate against
  std::string token_file;       // bearer token sent with every call; empty: none
};

// Where CtlCommand::server came from, so that an error can say how to point elsewhere.
enum class ServerSource { kDefault, kEnvironment, kFlag };

// One invocation of wsvisorctl, parsed and checked, with the request it will send.
struct CtlCommand {
  enum class Kind { kHelp, kRegister, kUpdate, kUnregister, kGet, kList, kWatch, kHistory, kProbe };
  Kind kind = Kind::kHelp;

  // The arguments as given, for an error that suggests another command (see commandLineAs()):
  // each secret header's value replaced by "<redacted>", and where the command word is.
  std::vector<std::string> shown_args;
  size_t command_position = 0;

  std::string server{kDefaultServer};
  ServerSource server_source = ServerSource::kDefault;
  std::chrono::nanoseconds request_timeout = kDefaultRequestTimeout;
  bool request_timeout_given = false;  // --request-timeout was on the command line
  OutputFormat output = OutputFormat::kTable;
  ConnectionOptions connection;
  // "Bearer <token>" read from connection.token_file before the first call; empty: none.
  std::string authorization;

  // Only the request of `kind` is filled in.
  v1::RegisterEndpointRequest register_request;
  v1::UpdateEndpointRequest update_request;  // its spec from the same flags as register's
  v1::UnregisterEndpointRequest unregister_request;
  v1::GetEndpointRequest get_request;
  v1::ListEndpointsRequest list_request;  // first page; the runner follows next_page_token
  v1::WatchHealthRequest watch_request;
  v1::GetEndpointHistoryRequest history_request;
  v1::ProbeEndpointRequest probe_request;  // its spec from the same flags as register's
};

// Parses the arguments after the program name. Flags may come before or after the command and
// its positional arguments, as `--flag value` or `--flag=value`; `--` ends the flags.
// `server_from_environment` is the value of WSVISOR_SERVER (empty when unset), and
// `token_file_from_environment` that of WSVISOR_TOKEN_FILE.
//
// A flag given on the command line is always set in the request, even to zero or empty, so that
// the server (not wsvisorctl) decides what is valid: `--interval 0s` sends a zero Duration and
// the server answers INVALID_ARGUMENT. Only what cannot be expressed in the request at all (an
// unknown mode, a label without '=', text that is not a duration or number) fails here.
//
// Returns nullopt and sets `error` to a one-line message that names the flag or argument.
std::optional<CtlCommand> parseCommandLine(const std::vector<std::string>& args,
                                           std::string_view server_from_environment,
                                           std::string& error,
                                           std::string_view token_file_from_environment = {});

// Whether v1::Header documents `name` as always secret (compared ignoring case). A header sent
// with `secret` set is secret too, but no wsvisorctl flag sets it.
bool isSecretHeaderName(std::string_view name);

// The command line that was given, with its command word replaced by `command_name`, quoted for
// a POSIX shell: "wsvisorctl update prices 'ws://h/?a=1' --label team=red". A secret header's
// value (see v1::Header.secret) is shown as "<redacted>", so that no secret is printed; sent as
// it is, UpdateEndpoint keeps the stored value of a secret header of that name, if there is one.
std::string commandLineAs(const CtlCommand& command, std::string_view command_name);

// Usage of every command, for `wsvisorctl help` and `--help`.
std::string usageText();

}  // namespace wsvisor::ctl

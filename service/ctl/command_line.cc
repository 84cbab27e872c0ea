#include "service/ctl/command_line.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <utility>

#include "service/api/duration_text.h"
#include "service/ctl/nearest_name.h"

namespace wsvisor::ctl {

using service::formatDuration;
using service::parseDuration;
using service::toProtoDuration;

namespace {

using Kind = CtlCommand::Kind;

// One flag that a command accepts. `apply` gets the flag's value; for a switch (no value) it
// gets "true" or "false".
struct Flag {
  std::string_view name;
  bool takes_value = true;
  std::function<bool(std::string_view value, std::string& error)> apply;
};

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string lowerCase(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

bool setDuration(std::string_view flag, std::string_view value, google::protobuf::Duration* target,
                 std::string& error) {
  std::string parse_error;
  const std::optional<std::chrono::nanoseconds> duration = parseDuration(value, parse_error);
  if (!duration) {
    error = std::string(flag) + ": " + parse_error;
    return false;
  }
  *target = toProtoDuration(*duration);
  return true;
}

template <typename Unsigned>
bool setUnsigned(std::string_view flag, std::string_view value, Unsigned& target,
                 std::string& error) {
  Unsigned parsed = 0;
  const auto [end, code] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (code == std::errc::result_out_of_range) {
    error = std::string(flag) + ": " + std::string(value) + " is too large (at most " +
            std::to_string(std::numeric_limits<Unsigned>::max()) + ")";
    return false;
  }
  if (value.empty() || code != std::errc() || end != value.data() + value.size()) {
    error = std::string(flag) + ": want a whole number, got " + quoted(value);
    return false;
  }
  target = parsed;
  return true;
}

bool setDouble(std::string_view flag, std::string_view value, double& target, std::string& error) {
  double parsed = 0;
  const auto [end, code] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (value.empty() || code != std::errc() || end != value.data() + value.size() ||
      !std::isfinite(parsed)) {
    error = std::string(flag) + ": want a number, got " + quoted(value);
    return false;
  }
  target = parsed;
  return true;
}

// Splits "key=value" at the first '='. The value may be empty and may contain '='.
bool splitKeyValue(std::string_view flag, std::string_view text, std::string& key,
                   std::string& value, std::string& error) {
  const size_t equals = text.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    error = std::string(flag) + ": want key=value, got " + quoted(text);
    return false;
  }
  key = std::string(text.substr(0, equals));
  value = std::string(text.substr(equals + 1));
  return true;
}

bool setMode(std::string_view value, v1::HeartbeatPolicy& heartbeat, std::string& error) {
  const std::string mode = lowerCase(value);
  if (mode == "ping") {
    heartbeat.set_mode(v1::HEARTBEAT_MODE_PING);
  } else if (mode == "text") {
    heartbeat.set_mode(v1::HEARTBEAT_MODE_TEXT);
  } else if (mode == "passive") {
    heartbeat.set_mode(v1::HEARTBEAT_MODE_PASSIVE);
  } else if (mode == "none") {
    heartbeat.set_mode(v1::HEARTBEAT_MODE_NONE);
  } else {
    error =
        "--mode: unknown heartbeat mode " + quoted(value) + " (want ping, text, passive or none)";
    return false;
  }
  return true;
}

// The flags that fill in an EndpointSpec, shared by `register` and `update`.
std::vector<Flag> specFlags(v1::EndpointSpec& spec) {
  // Sub-messages are created only when one of their flags is given: an unset message means
  // "all defaults", and `tls` must stay unset for ws:// URLs.
  return {
      {"--mode", true,
       [&spec](std::string_view v, std::string& e) {
         return setMode(v, *spec.mutable_heartbeat(), e);
       }},
      {"--interval", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--interval", v, spec.mutable_heartbeat()->mutable_interval(), e);
       }},
      {"--timeout", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--timeout", v, spec.mutable_heartbeat()->mutable_timeout(), e);
       }},
      {"--unhealthy-interval", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--unhealthy-interval", v,
                            spec.mutable_heartbeat()->mutable_unhealthy_interval(), e);
       }},
      {"--flap-threshold", true,
       [&spec](std::string_view v, std::string& e) {
         uint32_t n = 0;
         if (!setUnsigned("--flap-threshold", v, n, e)) return false;
         spec.mutable_flapping()->set_threshold(n);
         return true;
       }},
      {"--flap-window", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--flap-window", v, spec.mutable_flapping()->mutable_window(), e);
       }},
      {"--flap-quiet-period", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--flap-quiet-period", v,
                            spec.mutable_flapping()->mutable_quiet_period(), e);
       }},
      {"--no-flap-detection", false,
       [&spec](std::string_view, std::string&) {
         spec.mutable_flapping()->set_disabled(true);
         return true;
       }},
      {"--unhealthy-threshold", true,
       [&spec](std::string_view v, std::string& e) {
         uint32_t n = 0;
         if (!setUnsigned("--unhealthy-threshold", v, n, e)) return false;
         spec.mutable_heartbeat()->set_unhealthy_threshold(n);
         return true;
       }},
      {"--healthy-threshold", true,
       [&spec](std::string_view v, std::string& e) {
         uint32_t n = 0;
         if (!setUnsigned("--healthy-threshold", v, n, e)) return false;
         spec.mutable_heartbeat()->set_healthy_threshold(n);
         return true;
       }},
      {"--payload", true,
       [&spec](std::string_view v, std::string&) {
         spec.mutable_heartbeat()->set_payload(std::string(v));
         return true;
       }},
      {"--expect", true,
       [&spec](std::string_view v, std::string&) {
         spec.mutable_heartbeat()->set_expect(std::string(v));
         return true;
       }},
      {"--label", true,
       [&spec](std::string_view v, std::string& e) {
         std::string key, value;
         if (!splitKeyValue("--label", v, key, value, e)) return false;
         if (!spec.mutable_labels()->insert({key, value}).second) {
           e = "--label: key " + quoted(key) + " given twice";
           return false;
         }
         return true;
       }},
      {"--header", true,
       [&spec](std::string_view v, std::string& e) {
         std::string name, value;
         if (!splitKeyValue("--header", v, name, value, e)) return false;
         v1::Header* header = spec.add_headers();
         header->set_name(std::move(name));
         header->set_value(std::move(value));
         return true;
       }},
      {"--subprotocol", true,
       [&spec](std::string_view v, std::string&) {
         spec.add_subprotocols(std::string(v));
         return true;
       }},
      {"--connect-timeout", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--connect-timeout", v, spec.mutable_connect_timeout(), e);
       }},
      {"--ca-file", true,
       [&spec](std::string_view v, std::string&) {
         spec.mutable_tls()->set_ca_file(std::string(v));
         return true;
       }},
      {"--server-name", true,
       [&spec](std::string_view v, std::string&) {
         spec.mutable_tls()->set_server_name(std::string(v));
         return true;
       }},
      {"--insecure-skip-verify", false,
       [&spec](std::string_view v, std::string&) {
         spec.mutable_tls()->set_insecure_skip_verify(v == "true");
         return true;
       }},
      {"--client-cert", true,
       [&spec](std::string_view v, std::string&) {
         spec.mutable_tls()->set_client_cert_file(std::string(v));
         return true;
       }},
      {"--client-key", true,
       [&spec](std::string_view v, std::string&) {
         spec.mutable_tls()->set_client_key_file(std::string(v));
         return true;
       }},
      {"--max-message-bytes", true,
       [&spec](std::string_view v, std::string& e) {
         uint64_t n = 0;
         if (!setUnsigned("--max-message-bytes", v, n, e)) return false;
         spec.set_max_message_bytes(n);
         return true;
       }},
      {"--backoff-initial", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--backoff-initial", v, spec.mutable_backoff()->mutable_initial(), e);
       }},
      {"--backoff-multiplier", true,
       [&spec](std::string_view v, std::string& e) {
         double x = 0;
         if (!setDouble("--backoff-multiplier", v, x, e)) return false;
         spec.mutable_backoff()->set_multiplier(x);
         return true;
       }},
      {"--backoff-jitter", true,
       [&spec](std::string_view v, std::string& e) {
         double x = 0;
         if (!setDouble("--backoff-jitter", v, x, e)) return false;
         spec.mutable_backoff()->set_jitter(x);
         return true;
       }},
      {"--backoff-max", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--backoff-max", v, spec.mutable_backoff()->mutable_max(), e);
       }},
      {"--backoff-reset-after", true,
       [&spec](std::string_view v, std::string& e) {
         return setDuration("--backoff-reset-after", v,
                            spec.mutable_backoff()->mutable_reset_after(), e);
       }},
      {"--no-jitter", false,
       [&spec](std::string_view v, std::string&) {
         spec.mutable_backoff()->set_no_jitter(v == "true");
         return true;
       }},
  };
}

std::vector<Flag> selectorFlags(std::string* selector) {
  auto set = [selector](std::string_view v, std::string&) {
    *selector = std::string(v);
    return true;
  };
  return {{"--selector", true, set}, {"-l", true, set}};
}

std::optional<Kind> commandKind(std::string_view name) {
  if (name == "help") return Kind::kHelp;
  if (name == "register") return Kind::kRegister;
  if (name == "update") return Kind::kUpdate;
  if (name == "unregister") return Kind::kUnregister;
  if (name == "get") return Kind::kGet;
  if (name == "list") return Kind::kList;
  if (name == "watch") return Kind::kWatch;
  if (name == "history") return Kind::kHistory;
  if (name == "probe") return Kind::kProbe;
  return std::nullopt;
}

constexpr std::string_view kCommandNames[] = {"register", "update",  "unregister", "get", "list",
                                              "watch",    "history", "probe",      "help"};
constexpr char kWantCommand[] =
    "(want register, update, unregister, get, list, watch, history, probe or help)";

// The flags of command `kind` (besides the global ones), each filling in `command`'s request.
std::vector<Flag> commandFlags(Kind kind, CtlCommand& command) {
  std::vector<Flag> flags;
  switch (kind) {
    case Kind::kRegister:
      return specFlags(*command.register_request.mutable_spec());
    case Kind::kUpdate: {
      flags = specFlags(*command.update_request.mutable_spec());
      v1::UpdateEndpointRequest& request = command.update_request;
      flags.push_back(
          {"--expected-generation", true, [&request](std::string_view v, std::string& e) {
             uint64_t generation = 0;
             if (!setUnsigned("--expected-generation", v, generation, e)) return false;
             request.set_expected_generation(generation);
             return true;
           }});
      return flags;
    }
    case Kind::kProbe: {
      flags = specFlags(*command.probe_request.mutable_spec());
      v1::ProbeEndpointRequest& request = command.probe_request;
      flags.push_back({"--heartbeats", true, [&request](std::string_view v, std::string& e) {
                         uint32_t heartbeats = 0;
                         if (!setUnsigned("--heartbeats", v, heartbeats, e)) return false;
                         request.set_heartbeats(heartbeats);
                         return true;
                       }});
      return flags;
    }
    case Kind::kList:
      return selectorFlags(command.list_request.mutable_label_selector());
    case Kind::kWatch: {
      flags = selectorFlags(command.watch_request.mutable_label_selector());
      v1::WatchHealthRequest& request = command.watch_request;
      // "#42" is accepted too: that is how watch lines print a revision.
      flags.push_back({"--since", true, [&request](std::string_view v, std::string& e) {
                         uint64_t revision = 0;
                         if (!v.empty() && v.front() == '#') v.remove_prefix(1);
                         if (!setUnsigned("--since", v, revision, e)) return false;
                         request.set_since_revision(revision);
                         return true;
                       }});
      return flags;
    }
    case Kind::kUnregister:
    case Kind::kGet:
    case Kind::kHistory:
    case Kind::kHelp:
      return flags;
  }
  return flags;
}

// "register, update and probe": the commands other than `except` that take flag `name`.
std::string commandsTakingFlag(std::string_view name, std::optional<Kind> except) {
  std::vector<std::string_view> takers;
  for (std::string_view command_name : kCommandNames) {
    const Kind kind = *commandKind(command_name);
    if (kind == except) continue;
    CtlCommand scratch;
    const std::vector<Flag> flags = commandFlags(kind, scratch);
    if (std::any_of(flags.begin(), flags.end(), [&](const Flag& f) { return f.name == name; })) {
      takers.push_back(command_name);
    }
  }
  std::string text;
  for (size_t i = 0; i < takers.size(); ++i) {
    if (i > 0) text += i + 1 == takers.size() ? " and " : ", ";
    text += takers[i];
  }
  return text;
}

// Why `typed` (an argument that starts with '-', up to any '=') is not a flag here, and what
// was probably meant: "unknown flag --intervall for register; did you mean --interval?".
// `name` is the flag it was read as ("-i" for "-interval").
std::string unknownFlagError(std::string_view typed, std::string_view name,
                             const std::optional<std::string>& command_name,
                             const std::vector<Flag>& global_flags,
                             const std::vector<Flag>& command_flags) {
  std::string error = "unknown flag " + std::string(typed);
  const std::optional<Kind> kind = command_name ? commandKind(*command_name) : std::nullopt;
  if (command_name) error += " for " + *command_name;
  // A flag of another command: say whose, rather than guess at a similar one.
  const std::string takers = commandsTakingFlag(name, kind);
  if (!takers.empty()) {
    error += " (it is a flag of " + takers + ")";
    if (!command_name) error += "; give it after the command";
    return error;
  }
  std::vector<std::string_view> known = {"--help"};
  for (const std::vector<Flag>* flags : {&command_flags, &global_flags}) {
    for (const Flag& flag : *flags) known.push_back(flag.name);
  }
  known.push_back("-o");
  if (const auto nearest = nearestName(typed, known)) error += "; did you mean " + *nearest + "?";
  return error;
}

const Flag* findFlag(const std::vector<Flag>& flags, std::string_view name) {
  for (const Flag& flag : flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

// A flag whose value is stored as given and must not be empty.
std::function<bool(std::string_view, std::string&)> pathFlag(std::string_view name,
                                                             std::string& target) {
  return [name, &target](std::string_view v, std::string& e) {
    if (v.empty()) {
      e = std::string(name) + ": must not be empty";
      return false;
    }
    target = std::string(v);
    return true;
  };
}

// What the API shows in place of a secret header's value, and reads back as "keep it".
constexpr std::string_view kRedacted = "<redacted>";

// `arg` as a POSIX shell reads it back: as it is when it holds only characters no shell treats
// specially, else in single quotes (a quote inside written as '\'').
std::string shellQuoted(std::string_view arg) {
  constexpr std::string_view kPlain = "@%+=:,./_-";
  const bool plain = !arg.empty() && std::all_of(arg.begin(), arg.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || kPlain.find(c) != std::string_view::npos;
  });
  if (plain) return std::string(arg);
  std::string quoted_arg = "'";
  for (char c : arg) {
    if (c == '\'') {
      quoted_arg += "'\\''";
    } else {
      quoted_arg += c;
    }
  }
  return quoted_arg + "'";
}

// True when help was asked for anywhere before `--`: it wins over every other mistake.
bool wantsHelp(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--") return false;
    if (arg == "-h" || arg == "--help") return true;
  }
  return false;
}

// Checks the positional arguments of `command_name` and moves them into the request.
bool takePositionals(std::string_view command_name, const std::vector<std::string>& positionals,
                     CtlCommand& command, std::string& error) {
  // `names` are the arguments the command takes, in order.
  auto wantExactly = [&](const std::vector<std::string_view>& names) {
    if (positionals.size() == names.size()) return true;
    error = std::string(command_name);
    if (positionals.size() < names.size()) {
      error += ": missing";
      for (size_t i = positionals.size(); i < names.size(); ++i) {
        error += (i == positionals.size() ? " " : " and ") + std::string(names[i]);
      }
    } else {
      error += ": unexpected argument " + quoted(positionals[names.size()]);
      if (names.empty()) error += " (takes none)";
    }
    return false;
  };
  switch (command.kind) {
    case Kind::kRegister:
      if (!wantExactly({"ID", "URL"})) return false;
      command.register_request.mutable_spec()->set_id(positionals[0]);
      command.register_request.mutable_spec()->set_url(positionals[1]);
      return true;
    case Kind::kUpdate:
      if (!wantExactly({"ID", "URL"})) return false;
      command.update_request.mutable_spec()->set_id(positionals[0]);
      command.update_request.mutable_spec()->set_url(positionals[1]);
      return true;
    case Kind::kUnregister:
      if (!wantExactly({"ID"})) return false;
      command.unregister_request.set_id(positionals[0]);
      return true;
    case Kind::kGet:
      if (!wantExactly({"ID"})) return false;
      command.get_request.set_id(positionals[0]);
      return true;
    case Kind::kList:
      return wantExactly({});
    case Kind::kWatch:
      for (const std::string& id : positionals) command.watch_request.add_ids(id);
      return true;
    case Kind::kHistory:
      if (!wantExactly({"ID"})) return false;
      command.history_request.set_id(positionals[0]);
      return true;
    case Kind::kProbe:
      if (!wantExactly({"URL"})) return false;
      command.probe_request.mutable_spec()->set_url(positionals[0]);
      return true;
    case Kind::kHelp:
      return true;
  }
  return true;
}

}  // namespace

std::optional<CtlCommand> parseCommandLine(const std::vector<std::string>& args,
                                           std::string_view server_from_environment,
                                           std::string& error,
                                           std::string_view token_file_from_environment) {
  CtlCommand command;
  if (wantsHelp(args)) return command;
  command.shown_args = args;

  std::optional<std::string> server_flag;
  const std::vector<Flag> global_flags = {
      {"--server", true,
       [&server_flag](std::string_view v, std::string& e) {
         if (v.empty()) {
           e = "--server: must not be empty (want host:port)";
           return false;
         }
         server_flag = std::string(v);
         return true;
       }},
      {"--request-timeout", true,
       [&command](std::string_view v, std::string& e) {
         std::string parse_error;
         const auto timeout = parseDuration(v, parse_error);
         if (!timeout || timeout->count() == 0) {
           e = "--request-timeout: " + (timeout ? "must be greater than 0" : parse_error);
           return false;
         }
         command.request_timeout = *timeout;
         command.request_timeout_given = true;
         return true;
       }},
      {"--tls", false,
       [&command](std::string_view v, std::string&) {
         command.connection.tls = v == "true";
         return true;
       }},
      {"--tls-ca", true, pathFlag("--tls-ca", command.connection.tls_ca_file)},
      {"--tls-cert", true, pathFlag("--tls-cert", command.connection.tls_cert_file)},
      {"--tls-key", true, pathFlag("--tls-key", command.connection.tls_key_file)},
      {"--tls-server-name", true,
       pathFlag("--tls-server-name", command.connection.tls_server_name)},
      {"--token-file", true, pathFlag("--token-file", command.connection.token_file)},
      {"--output", true,
       [&command](std::string_view v, std::string& e) {
         if (v == "json") {
           command.output = OutputFormat::kJson;
         } else if (v == "table") {
           command.output = OutputFormat::kTable;
         } else {
           e = "--output: unknown format " + quoted(v) + " (want table or json)";
           return false;
         }
         return true;
       }},
  };

  std::optional<std::string> command_name;
  std::vector<Flag> command_flags;
  std::vector<std::string> positionals;
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      if (command_name) {
        positionals.push_back(arg);
        continue;
      }
      const std::optional<Kind> kind = commandKind(arg);
      if (!kind) {
        error = "unknown command " + quoted(arg) + " " + kWantCommand;
        const std::vector<std::string_view> names(std::begin(kCommandNames),
                                                  std::end(kCommandNames));
        if (const auto nearest = nearestName(arg, names)) {
          error += "; did you mean " + *nearest + "?";
        }
        return std::nullopt;
      }
      if (*kind == Kind::kHelp) return CtlCommand{};
      command.kind = *kind;
      command_name = arg;
      command.command_position = i;
      command_flags = commandFlags(*kind, command);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }

    // "--name=value", "--name value", and for the one-letter flags also "-ojson", "-o=json".
    std::string name;
    std::optional<std::string> inline_value;
    if (arg[1] == '-') {
      const size_t equals = arg.find('=');
      name = arg.substr(0, equals);
      if (equals != std::string::npos) inline_value = arg.substr(equals + 1);
    } else {
      name = arg.substr(0, 2);
      if (arg.size() > 2) inline_value = arg.substr(arg[2] == '=' ? 3 : 2);
    }
    if (name == "-o") name = "--output";

    const Flag* flag = findFlag(global_flags, name);
    if (flag == nullptr) flag = findFlag(command_flags, name);
    if (flag == nullptr) {
      const std::string typed = arg.substr(0, arg.find('='));
      error = unknownFlagError(typed, name, command_name, global_flags, command_flags);
      return std::nullopt;
    }
    std::string value;
    if (flag->takes_value) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        error = name + ": missing value";
        return std::nullopt;
      }
    } else {
      value = inline_value.value_or("true");
      if (value != "true" && value != "false") {
        error = name + ": want true or false, got " + quoted(value);
        return std::nullopt;
      }
    }
    if (!flag->apply(value, error)) return std::nullopt;
    if (flag->name == "--header") {
      // args[i] is "--header=NAME=VALUE" or, after "--header", "NAME=VALUE".
      const std::string header_name = value.substr(0, value.find('='));
      if (isSecretHeaderName(header_name)) {
        command.shown_args[i] = (inline_value ? name + "=" : std::string()) + header_name + "=" +
                                std::string(kRedacted);
      }
    }
  }

  if (!command_name) {
    error = std::string("missing command ") + kWantCommand;
    return std::nullopt;
  }
  if (!takePositionals(*command_name, positionals, command, error)) return std::nullopt;

  ConnectionOptions& connection = command.connection;
  if (connection.tls_cert_file.empty() != connection.tls_key_file.empty()) {
    error = "--tls-cert and --tls-key go together: give both or neither";
    return std::nullopt;
  }
  connection.tls = connection.tls || !connection.tls_ca_file.empty() ||
                   !connection.tls_cert_file.empty() || !connection.tls_server_name.empty();
  if (connection.token_file.empty())
    connection.token_file = std::string(token_file_from_environment);

  if (server_flag) {
    command.server = *server_flag;
    command.server_source = ServerSource::kFlag;
  } else if (!server_from_environment.empty()) {
    command.server = std::string(server_from_environment);
    command.server_source = ServerSource::kEnvironment;
  }
  return command;
}

bool isSecretHeaderName(std::string_view name) {
  const std::string lower = lowerCase(name);
  return lower == "authorization" || lower == "proxy-authorization" || lower == "cookie" ||
         lower == "x-api-key" || lower == "x-auth-token";
}

std::string commandLineAs(const CtlCommand& command, std::string_view command_name) {
  std::string line = "wsvisorctl";
  for (size_t i = 0; i < command.shown_args.size(); ++i) {
    line += ' ';
    line += i == command.command_position ? std::string(command_name)
                                          : shellQuoted(command.shown_args[i]);
  }
  return line;
}

std::string usageText() {
  // Keep in step with the flag tables above.
  return R"(wsvisorctl: command-line client of the wsvisor connection supervisor.

Usage: wsvisorctl [global flags] COMMAND [arguments] [flags]

Commands:
  register ID URL [flags]      start supervising a ws:// or wss:// endpoint
      --mode ping|text|passive|none
                                 heartbeat mode (default ping); none: connect only, an open
                                 connection is healthy (cannot see a silently dead peer)
      --interval D               time between heartbeats (default 10s)
      --timeout D                wait for a heartbeat's answer, or silence allowed in passive
                                 mode (default: interval; passive: 2 x interval, at most 1h);
                                 longer than --interval: several heartbeats outstanding
      --unhealthy-interval D     time between heartbeats while not healthy or after a failed
                                 heartbeat (default: --interval)
      --unhealthy-threshold N    failed heartbeats in a row that mark it unhealthy (default 1)
      --healthy-threshold N      successful heartbeats in a row that mark it healthy (default 1)
      --payload S                text mode: message sent (default "heartbeat")
      --expect REGEX             text mode: a reply must match in full (default: the payload)
      --label KEY=VALUE          label for selection; repeatable
      --header NAME=VALUE        handshake request header; repeatable, sent in order
      --subprotocol P            offered subprotocol; repeatable, in preference order
      --connect-timeout D        DNS + TCP + TLS + handshake limit (default 20s)
      --max-message-bytes N      largest message accepted (default 1048576)
      --ca-file F                wss: PEM CA bundle (default: system trust store)
      --server-name N            wss: SNI and certificate name (default: the URL's host)
      --insecure-skip-verify     wss: accept any certificate
      --client-cert F            wss: PEM client certificate (with --client-key)
      --client-key F             wss: PEM client key (with --client-cert)
      --backoff-initial D        first reconnect delay (default 1s)
      --backoff-multiplier X     growth per retry (default 1.6)
      --backoff-jitter X         random fraction added or removed (default 0.2)
      --backoff-max D            largest reconnect delay (default 2m)
      --backoff-reset-after D    healthy time that restarts the schedule (default 10s)
      --no-jitter                exact reconnect delays
      --flap-threshold N         more health changes than N within the window: flapping
                                 (default 5)
      --flap-window D            window in which changes are counted (default 2m)
      --flap-quiet-period D      flapping ends after this long without a change (default 1m)
      --no-flap-detection        never report flapping
  update ID URL [flags]        replace an endpoint's spec: takes the register flags, and a flag
                               left out takes its default (the current value is not kept)
      --expected-generation N    update only if the endpoint is still at generation N (as shown
                                 by get), else fail with ABORTED (default: unconditionally)
  unregister ID                stop supervising an endpoint
  get ID                       show one endpoint
  list [--selector SEL]        show all endpoints, or those whose labels match SEL
  watch [ID...] [--selector SEL] [--since REV]
                               print the current state of each endpoint, then every change,
                               until interrupted (Ctrl-C) or the server ends the stream
      --since REV                resume instead: no snapshot, replay every change after
                                 revision REV, then go on live. REV is the number after '#' on
                                 the last line an earlier watch printed. Fails (OUT_OF_RANGE)
                                 when the server no longer holds all of them or has restarted
  history ID                   show an endpoint's last health transitions, oldest first: when,
                               from and to which health, RTT, revision, reason and failure
  probe URL [flags]            open one connection as register would (same flags), send a few
                               heartbeats, close it, and print the connect time and every RTT;
                               registers nothing. No deadline unless --request-timeout is
                               given: wsvisor ends it within connect timeout + N x (interval +
                               timeout)
      --heartbeats N             heartbeats that must succeed (default 3, at most 100; passive:
                                 messages that must arrive)
  help                         show this text

  SEL is comma-separated key=value or key!=value requirements that must all hold (-l SEL
  is short for --selector SEL). D is a duration: 250ms, 10s, 1.5s, 1m30s, 2h, 100us.
  A flag given is sent even when zero, and the server checks it.

Global flags (anywhere on the line):
  --server HOST:PORT           wsvisor's gRPC address (default $WSVISOR_SERVER, else
                               127.0.0.1:50051)
  -o, --output table|json      table (default) or protobuf JSON, one message per line
  --request-timeout D          deadline of each call except watch (default 10s; probe: none)
  --token-file F               send the bearer token in F (one line) with every call
                               (default $WSVISOR_TOKEN_FILE; none when unset)
  --tls                        connect with TLS, trusting the system's CAs
  --tls-ca F                   connect with TLS, trusting the CAs in PEM file F
  --tls-cert F, --tls-key F    client certificate and key (PEM) for mutual TLS
  --tls-server-name N          name the server's certificate must carry (default: the
                               --server host)
  -h, --help                   show this text

Exit status: 0 success, 1 the call failed (the server's status is printed as
"wsvisorctl: CODE: message", and where the fix is on this side, what to do), 2 the command
line is wrong, 3 a probe ran and the upstream failed it (printed as "FAILED: reason: detail").
)";
}

}  // namespace wsvisor::ctl

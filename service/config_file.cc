#include "service/config_file.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "service/api/duration_text.h"

namespace wsvisor::service {

namespace {

// Reports the first problem with its path; thrown inside the parser only.
struct ConfigError {
  std::string message;
};

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw ConfigError{path + ": " + why};
}

void checkKeys(const YAML::Node& node, const std::string& path,
               const std::set<std::string>& allowed) {
  if (!node.IsMap()) fail(path, "must be a mapping");
  for (const auto& item : node) {
    const std::string key = item.first.as<std::string>();
    if (allowed.count(key) == 0) fail(path + "." + key, "unknown key");
  }
}

std::string scalar(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) fail(path, "must be a string");
  return node.as<std::string>();
}

template <typename T>
T number(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) fail(path, "must be a number");
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    fail(path, "must be a number, got '" + node.as<std::string>() + "'");
  }
}

bool boolean(const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) fail(path, "must be true or false");
  try {
    return node.as<bool>();
  } catch (const YAML::Exception&) {
    fail(path, "must be true or false, got '" + node.as<std::string>() + "'");
  }
}

// Unset durations keep the core's "unset" (zero, the default applies); a written duration must
// be positive, as in the API.
core::Duration duration(const YAML::Node& node, const std::string& path) {
  std::string error;
  const auto parsed = parseDuration(scalar(node, path), error);
  if (!parsed) fail(path, error);
  if (*parsed <= core::Duration::zero()) {
    fail(path, "must be positive (leave it out for the default)");
  }
  return *parsed;
}

void parseHeartbeat(const YAML::Node& node, const std::string& path, core::HeartbeatPolicy& hb) {
  checkKeys(node, path,
            {"mode", "interval", "timeout", "unhealthy_interval", "unhealthy_threshold",
             "healthy_threshold", "payload", "expect"});
  if (node["mode"]) {
    const std::string mode = scalar(node["mode"], path + ".mode");
    if (mode == "ping") {
      hb.mode = core::HeartbeatMode::kPing;
    } else if (mode == "text") {
      hb.mode = core::HeartbeatMode::kText;
    } else if (mode == "passive") {
      hb.mode = core::HeartbeatMode::kPassive;
    } else if (mode == "none") {
      hb.mode = core::HeartbeatMode::kNone;
    } else {
      fail(path + ".mode", "must be ping, text, passive or none, got '" + mode + "'");
    }
  }
  if (node["interval"]) hb.interval = duration(node["interval"], path + ".interval");
  if (node["timeout"]) hb.timeout = duration(node["timeout"], path + ".timeout");
  if (node["unhealthy_interval"]) {
    hb.unhealthy_interval = duration(node["unhealthy_interval"], path + ".unhealthy_interval");
  }
  if (node["unhealthy_threshold"]) {
    hb.unhealthy_threshold =
        number<uint32_t>(node["unhealthy_threshold"], path + ".unhealthy_threshold");
  }
  if (node["healthy_threshold"]) {
    hb.healthy_threshold = number<uint32_t>(node["healthy_threshold"], path + ".healthy_threshold");
  }
  if (node["payload"]) hb.payload = scalar(node["payload"], path + ".payload");
  if (node["expect"]) hb.expect = scalar(node["expect"], path + ".expect");
}

void parseBackoff(const YAML::Node& node, const std::string& path, core::BackoffPolicy& bo) {
  checkKeys(node, path, {"initial", "multiplier", "jitter", "no_jitter", "max", "reset_after"});
  if (node["initial"]) bo.initial = duration(node["initial"], path + ".initial");
  if (node["multiplier"]) bo.multiplier = number<double>(node["multiplier"], path + ".multiplier");
  if (node["jitter"]) bo.jitter = number<double>(node["jitter"], path + ".jitter");
  if (node["no_jitter"]) bo.jitter_enabled = !boolean(node["no_jitter"], path + ".no_jitter");
  if (node["max"]) bo.max = duration(node["max"], path + ".max");
  if (node["reset_after"]) bo.reset_after = duration(node["reset_after"], path + ".reset_after");
}

void parseFlapping(const YAML::Node& node, const std::string& path, core::FlapPolicy& flap) {
  checkKeys(node, path, {"threshold", "window", "quiet_period", "disabled"});
  if (node["threshold"]) flap.threshold = number<uint32_t>(node["threshold"], path + ".threshold");
  if (node["window"]) flap.window = duration(node["window"], path + ".window");
  if (node["quiet_period"]) {
    flap.quiet_period = duration(node["quiet_period"], path + ".quiet_period");
  }
  if (node["disabled"]) flap.enabled = !boolean(node["disabled"], path + ".disabled");
}

void parseTls(const YAML::Node& node, const std::string& path, core::TlsOptions& tls) {
  checkKeys(
      node, path,
      {"ca_file", "server_name", "insecure_skip_verify", "client_cert_file", "client_key_file"});
  if (node["ca_file"]) tls.ca_file = scalar(node["ca_file"], path + ".ca_file");
  if (node["server_name"]) tls.server_name = scalar(node["server_name"], path + ".server_name");
  if (node["insecure_skip_verify"]) {
    tls.insecure_skip_verify =
        boolean(node["insecure_skip_verify"], path + ".insecure_skip_verify");
  }
  if (node["client_cert_file"]) {
    tls.client_cert_file = scalar(node["client_cert_file"], path + ".client_cert_file");
  }
  if (node["client_key_file"]) {
    tls.client_key_file = scalar(node["client_key_file"], path + ".client_key_file");
  }
}

core::EndpointSpec parseEndpoint(const YAML::Node& node, const std::string& path) {
  checkKeys(node, path,
            {"id", "url", "labels", "headers", "subprotocols", "heartbeat", "backoff",
             "connect_timeout", "max_message_bytes", "tls", "flapping"});
  core::EndpointSpec spec;
  if (!node["id"]) fail(path + ".id", "is required");
  spec.id = scalar(node["id"], path + ".id");
  if (!node["url"]) fail(path + ".url", "is required");
  spec.url = scalar(node["url"], path + ".url");
  if (const YAML::Node labels = node["labels"]) {
    if (!labels.IsMap()) fail(path + ".labels", "must be a mapping of key: value");
    for (const auto& item : labels) {
      const std::string key = item.first.as<std::string>();
      spec.labels[key] = scalar(item.second, path + ".labels." + key);
    }
  }
  if (const YAML::Node headers = node["headers"]) {
    if (!headers.IsSequence()) fail(path + ".headers", "must be a list of {name, value}");
    for (size_t i = 0; i < headers.size(); ++i) {
      const std::string header_path = path + ".headers[" + std::to_string(i) + "]";
      checkKeys(headers[i], header_path, {"name", "value"});
      if (!headers[i]["name"]) fail(header_path + ".name", "is required");
      spec.headers.push_back(
          {scalar(headers[i]["name"], header_path + ".name"),
           headers[i]["value"] ? scalar(headers[i]["value"], header_path + ".value") : ""});
    }
  }
  if (const YAML::Node subprotocols = node["subprotocols"]) {
    if (!subprotocols.IsSequence()) fail(path + ".subprotocols", "must be a list");
    for (size_t i = 0; i < subprotocols.size(); ++i) {
      spec.subprotocols.push_back(
          scalar(subprotocols[i], path + ".subprotocols[" + std::to_string(i) + "]"));
    }
  }
  if (node["heartbeat"]) parseHeartbeat(node["heartbeat"], path + ".heartbeat", spec.heartbeat);
  if (node["backoff"]) parseBackoff(node["backoff"], path + ".backoff", spec.backoff);
  if (node["connect_timeout"]) {
    spec.connect_timeout = duration(node["connect_timeout"], path + ".connect_timeout");
  }
  if (node["max_message_bytes"]) {
    spec.max_message_bytes =
        number<uint64_t>(node["max_message_bytes"], path + ".max_message_bytes");
  }
  if (node["tls"]) parseTls(node["tls"], path + ".tls", spec.tls);
  if (node["flapping"]) parseFlapping(node["flapping"], path + ".flapping", spec.flapping);
  return spec;
}

}  // namespace

std::variant<std::vector<core::EndpointSpec>, std::string> parseConfigText(
    const std::string& text) {
  try {
    const YAML::Node root = YAML::Load(text);
    std::vector<core::EndpointSpec> specs;
    if (!root || root.IsNull()) return specs;  // an empty file: no endpoints
    checkKeys(root, "config", {"endpoints"});
    const YAML::Node endpoints = root["endpoints"];
    if (!endpoints || endpoints.IsNull()) return specs;
    if (!endpoints.IsSequence()) return std::string("endpoints: must be a list");
    for (size_t i = 0; i < endpoints.size(); ++i) {
      specs.push_back(parseEndpoint(endpoints[i], "endpoints[" + std::to_string(i) + "]"));
    }
    return specs;
  } catch (const ConfigError& e) {
    return e.message;
  } catch (const YAML::Exception& e) {
    return std::string("not valid YAML: ") + e.what();
  }
}

std::variant<std::vector<core::EndpointSpec>, std::string> loadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "cannot read " + path;
  std::ostringstream text;
  text << in.rdbuf();
  auto result = parseConfigText(text.str());
  if (auto* error = std::get_if<std::string>(&result)) return path + ": " + *error;
  return result;
}

}  // namespace wsvisor::service

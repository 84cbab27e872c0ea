#include "supervisor/core/spec_difference.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <type_traits>
#include <utility>

namespace wsvisor::core {

namespace {

constexpr const char* kUnset = "unset";
// Longer texts (URLs, payloads, expressions) are cut to this many bytes, so that a message with
// several of them stays readable and bounded.
constexpr size_t kMaxValueLength = 64;

// The spelling of spec_validation's messages: whole seconds as "5s", else "250ms" or "100us".
std::string showDuration(Duration d) {
  if (d == Duration::zero()) return kUnset;
  const auto ns = d.count();
  if (ns % 1000 != 0) return std::to_string(ns) + "ns";
  const auto us = ns / 1000;
  if (us % 1000 != 0) return std::to_string(us) + "us";
  const auto ms = us / 1000;
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  return std::to_string(ms / 1000) + "s";
}

std::string showNumber(uint64_t n) { return std::to_string(n); }

std::string showDouble(double x) {
  char text[32];
  const auto [end, code] = std::to_chars(text, text + sizeof text, x);
  if (code != std::errc()) return "?";
  return std::string(text, end);
}

std::string showBool(bool b) { return b ? "true" : "false"; }

std::string showMode(HeartbeatMode mode) {
  switch (mode) {
    case HeartbeatMode::kPing:
      return "PING";
    case HeartbeatMode::kText:
      return "TEXT";
    case HeartbeatMode::kPassive:
      return "PASSIVE";
    case HeartbeatMode::kNone:
      return "NONE";
  }
  return "?";
}

// `text` in double quotes, cut after kMaxValueLength bytes (at a UTF-8 character boundary).
std::string quoted(const std::string& text) {
  std::string shown;
  size_t end = text.size();
  if (end > kMaxValueLength) {
    end = kMaxValueLength;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  }
  for (size_t i = 0; i < end; ++i) {
    if (text[i] == '"' || text[i] == '\\') shown += '\\';
    shown += text[i];
  }
  if (end < text.size()) shown += "...";
  return "\"" + shown + "\"";
}

// An optional text: "unset" when empty.
std::string showText(const std::string& text) { return text.empty() ? kUnset : quoted(text); }

std::string showList(const std::vector<std::string>& items) {
  if (items.empty()) return kUnset;
  std::string shown = "[";
  for (size_t i = 0; i < items.size(); ++i) shown += (i == 0 ? "" : ", ") + quoted(items[i]);
  return shown + "]";
}

// A whole header, its value hidden when it is a credential.
std::string showHeader(const Header& header) {
  return quoted(header.name + ": " + (isSecretHeader(header) ? kRedactedValue : header.value));
}

class DifferenceList {
 public:
  DifferenceList(const EndpointSpec& stored, const EndpointSpec& requested)
      : stored_(stored), requested_(requested) {}

  // Compares the field that `get` selects (a generic lambda returning a reference into the
  // spec it is given). A value is its spec's default when the field, set back to its unset
  // value (zero, empty) and filled by applyDefaults(), takes that very value.
  //
  // Two different defaults follow from other fields (the timeout from the interval, the payload
  // from the mode), which are listed themselves: the field is left out. So the listed fields are
  // what a caller must change to send the stored spec.
  template <typename Get, typename Show>
  void compare(const char* field, Get get, Show show) {
    const auto& stored = get(stored_);
    const auto& requested = get(requested_);
    if (stored == requested) return;
    const bool requested_is_default = isDefault(requested_, get);
    if (requested_is_default && isDefault(stored_, get)) return;
    add(field, show(stored), show(requested), requested_is_default);
  }

  void add(std::string field, std::string stored, std::string requested, bool is_default) {
    // "unset (default)" says nothing more than "unset".
    const bool mark_default = is_default && requested != kUnset;
    list_.push_back({std::move(field), std::move(stored), std::move(requested), mark_default});
  }

  void addSecret(std::string field) {
    list_.push_back({std::move(field), kRedactedValue, kRedactedValue, false, true});
  }

  std::vector<FieldDifference> take() { return std::move(list_); }

 private:
  template <typename Get>
  static bool isDefault(const EndpointSpec& spec, Get get) {
    EndpointSpec unset = spec;
    get(unset) = std::decay_t<decltype(get(spec))>{};
    applyDefaults(unset);
    return get(unset) == get(spec);
  }

  const EndpointSpec& stored_;
  const EndpointSpec& requested_;
  std::vector<FieldDifference> list_;
};

void compareLabels(const EndpointSpec& stored, const EndpointSpec& requested,
                   DifferenceList& list) {
  std::set<std::string> keys;
  for (const auto& [key, value] : stored.labels) keys.insert(key);
  for (const auto& [key, value] : requested.labels) keys.insert(key);
  for (const std::string& key : keys) {
    const auto a = stored.labels.find(key);
    const auto b = requested.labels.find(key);
    const bool in_a = a != stored.labels.end();
    const bool in_b = b != requested.labels.end();
    if (in_a && in_b && a->second == b->second) continue;
    list.add("spec.labels[" + key + "]", in_a ? quoted(a->second) : kUnset,
             in_b ? quoted(b->second) : kUnset, false);
  }
}

void compareHeaders(const std::vector<Header>& stored, const std::vector<Header>& requested,
                    DifferenceList& list) {
  const size_t count = std::max(stored.size(), requested.size());
  for (size_t i = 0; i < count; ++i) {
    const std::string field = "spec.headers[" + std::to_string(i) + "]";
    if (i >= stored.size() || i >= requested.size()) {
      list.add(field, i < stored.size() ? showHeader(stored[i]) : kUnset,
               i < requested.size() ? showHeader(requested[i]) : kUnset, false);
      continue;
    }
    const Header& a = stored[i];
    const Header& b = requested[i];
    if (a.name != b.name) list.add(field + ".name", quoted(a.name), quoted(b.name), false);
    if (a.value != b.value) {
      // Either value may be a credential; showing the other one could give away the first.
      if (isSecretHeader(a) || isSecretHeader(b)) {
        list.addSecret(field + ".value");
      } else {
        list.add(field + ".value", quoted(a.value), quoted(b.value), false);
      }
    }
    if (a.secret != b.secret) {
      list.add(field + ".secret", showBool(a.secret), showBool(b.secret), !b.secret);
    }
  }
}

}  // namespace

std::vector<FieldDifference> specDifferences(const EndpointSpec& stored,
                                             const EndpointSpec& requested) {
  DifferenceList list(stored, requested);
  list.compare(
      "spec.id", [](auto& s) -> auto& { return s.id; }, showText);
  list.compare(
      "spec.url", [](auto& s) -> auto& { return s.url; }, showText);
  compareLabels(stored, requested, list);
  compareHeaders(stored.headers, requested.headers, list);
  list.compare(
      "spec.subprotocols", [](auto& s) -> auto& { return s.subprotocols; }, showList);

  list.compare(
      "spec.heartbeat.mode", [](auto& s) -> auto& { return s.heartbeat.mode; }, showMode);
  list.compare(
      "spec.heartbeat.interval", [](auto& s) -> auto& { return s.heartbeat.interval; },
      showDuration);
  list.compare(
      "spec.heartbeat.timeout", [](auto& s) -> auto& { return s.heartbeat.timeout; }, showDuration);
  list.compare(
      "spec.heartbeat.unhealthy_threshold",
      [](auto& s) -> auto& { return s.heartbeat.unhealthy_threshold; }, showNumber);
  list.compare(
      "spec.heartbeat.healthy_threshold",
      [](auto& s) -> auto& { return s.heartbeat.healthy_threshold; }, showNumber);
  list.compare(
      "spec.heartbeat.payload", [](auto& s) -> auto& { return s.heartbeat.payload; }, showText);
  list.compare(
      "spec.heartbeat.expect", [](auto& s) -> auto& { return s.heartbeat.expect; }, showText);
  list.compare(
      "spec.heartbeat.unhealthy_interval",
      [](auto& s) -> auto& { return s.heartbeat.unhealthy_interval; }, showDuration);

  list.compare(
      "spec.backoff.initial", [](auto& s) -> auto& { return s.backoff.initial; }, showDuration);
  list.compare(
      "spec.backoff.multiplier", [](auto& s) -> auto& { return s.backoff.multiplier; }, showDouble);
  // Without jitter the jitter fraction is 0 by definition: only no_jitter is news.
  if (stored.backoff.jitter_enabled == requested.backoff.jitter_enabled) {
    list.compare(
        "spec.backoff.jitter", [](auto& s) -> auto& { return s.backoff.jitter; }, showDouble);
  }
  list.compare(
      "spec.backoff.max", [](auto& s) -> auto& { return s.backoff.max; }, showDuration);
  list.compare(
      "spec.backoff.reset_after", [](auto& s) -> auto& { return s.backoff.reset_after; },
      showDuration);
  if (stored.backoff.jitter_enabled != requested.backoff.jitter_enabled) {
    // The API's field is the inverse: no_jitter, unset (false) by default.
    list.add("spec.backoff.no_jitter", showBool(!stored.backoff.jitter_enabled),
             showBool(!requested.backoff.jitter_enabled), requested.backoff.jitter_enabled);
  }

  list.compare(
      "spec.connect_timeout", [](auto& s) -> auto& { return s.connect_timeout; }, showDuration);
  list.compare(
      "spec.tls.ca_file", [](auto& s) -> auto& { return s.tls.ca_file; }, showText);
  list.compare(
      "spec.tls.server_name", [](auto& s) -> auto& { return s.tls.server_name; }, showText);
  list.compare(
      "spec.tls.insecure_skip_verify", [](auto& s) -> auto& { return s.tls.insecure_skip_verify; },
      showBool);
  list.compare(
      "spec.tls.client_cert_file", [](auto& s) -> auto& { return s.tls.client_cert_file; },
      showText);
  list.compare(
      "spec.tls.client_key_file", [](auto& s) -> auto& { return s.tls.client_key_file; }, showText);
  list.compare(
      "spec.max_message_bytes", [](auto& s) -> auto& { return s.max_message_bytes; }, showNumber);

  // Turned off, flap detection has no threshold, window or quiet period to compare.
  if (stored.flapping.enabled == requested.flapping.enabled) {
    list.compare(
        "spec.flapping.threshold", [](auto& s) -> auto& { return s.flapping.threshold; },
        showNumber);
    list.compare(
        "spec.flapping.window", [](auto& s) -> auto& { return s.flapping.window; }, showDuration);
    list.compare(
        "spec.flapping.quiet_period", [](auto& s) -> auto& { return s.flapping.quiet_period; },
        showDuration);
  } else {
    list.add("spec.flapping.disabled", showBool(!stored.flapping.enabled),
             showBool(!requested.flapping.enabled), requested.flapping.enabled);
  }
  return list.take();
}

std::string describeDifferences(const std::vector<FieldDifference>& differences, size_t max_shown) {
  std::string text;
  const size_t shown = std::min(differences.size(), max_shown);
  for (size_t i = 0; i < shown; ++i) {
    const FieldDifference& d = differences[i];
    if (i > 0) text += "; ";
    text += d.field + ": ";
    if (d.secret) {
      text += "differs (a secret: values not shown)";
      continue;
    }
    text += "stored " + d.stored + ", requested " + d.requested;
    if (d.requested_is_default) text += " (default)";
  }
  if (shown < differences.size()) {
    text += "; and " + std::to_string(differences.size() - shown) + " more";
  }
  return text;
}

}  // namespace wsvisor::core

#include "service/api/proto_conversions.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace wsvisor::service {

namespace {

using google::protobuf::Duration;
using google::protobuf::Timestamp;

core::Duration fromProto(const Duration& d) {
  return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

void toProto(core::Duration d, Duration* out) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(d);
  out->set_seconds(seconds.count());
  out->set_nanos(static_cast<int32_t>((d - seconds).count()));
}

template <typename Message>
void setIfPositive(core::Duration d, Message* message, Duration* (Message::*field)()) {
  if (d > core::Duration::zero()) toProto(d, (message->*field)());
}

void toProto(core::WallTime t, Timestamp* out) {
  const auto since_epoch = t.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  out->set_seconds(seconds.count());
  out->set_nanos(static_cast<int32_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count()));
}

// The core keeps monotonic times; callers want wall-clock ones. The offset between the clocks is
// taken once, so the same moment always converts to the same timestamp (a wall-clock step after
// start-up is not followed; supervision itself never depends on the wall clock).
std::chrono::system_clock::duration wallMinusMono() {
  static const auto offset = std::chrono::system_clock::now().time_since_epoch() -
                             std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                 core::MonoClock::now().time_since_epoch());
  return offset;
}

core::WallTime toWall(core::MonoTime t) {
  return core::WallTime(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(t.time_since_epoch()) +
      wallMinusMono());
}

// The inverse of toWall, for times another replica published.
core::MonoTime fromWall(const Timestamp& t) {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos()));
  return core::MonoTime(std::chrono::duration_cast<core::Duration>(since_epoch - wallMinusMono()));
}

// google.protobuf.Duration spans +/-10,000 years, core durations (int64 nanoseconds) about
// +/-292 years. Longer values are refused before the conversion, which would overflow; every
// limit is far below. One second less than the most, so that any valid nanos part fits too.
constexpr int64_t kMaxDurationSeconds =
    std::chrono::duration_cast<std::chrono::seconds>(core::Duration::max()).count() - 1;
constexpr int32_t kMaxDurationNanos = 999'999'999;

// A duration field: unset keeps the core's "unset" (zero); set must be positive.
std::optional<core::FieldError> durationField(bool has, const Duration& d, const char* field,
                                              core::Duration& out) {
  if (!has) return std::nullopt;
  if (d.seconds() > kMaxDurationSeconds || d.seconds() < -kMaxDurationSeconds ||
      d.nanos() > kMaxDurationNanos || d.nanos() < -kMaxDurationNanos) {
    return core::FieldError{field, "is out of range, got " + std::to_string(d.seconds()) + "s " +
                                       std::to_string(d.nanos()) + "ns"};
  }
  const core::Duration value = fromProto(d);
  if (value <= core::Duration::zero()) {
    return core::FieldError{
        field, "must be positive when set (leave it unset for the default), got " +
                   std::to_string(d.seconds()) + "s " + std::to_string(d.nanos()) + "ns"};
  }
  out = value;
  return std::nullopt;
}

}  // namespace

std::variant<core::EndpointSpec, core::FieldError> specFromProto(const v1::EndpointSpec& proto) {
  core::EndpointSpec spec;
  spec.id = proto.id();
  spec.url = proto.url();
  spec.labels.insert(proto.labels().begin(), proto.labels().end());
  for (const v1::Header& h : proto.headers()) {
    spec.headers.push_back({h.name(), h.value(), h.secret()});
  }
  spec.subprotocols.assign(proto.subprotocols().begin(), proto.subprotocols().end());

  const v1::HeartbeatPolicy& hb = proto.heartbeat();
  switch (hb.mode()) {
    case v1::HEARTBEAT_MODE_UNSPECIFIED:
    case v1::HEARTBEAT_MODE_PING:
      spec.heartbeat.mode = core::HeartbeatMode::kPing;
      break;
    case v1::HEARTBEAT_MODE_TEXT:
      spec.heartbeat.mode = core::HeartbeatMode::kText;
      break;
    case v1::HEARTBEAT_MODE_PASSIVE:
      spec.heartbeat.mode = core::HeartbeatMode::kPassive;
      break;
    case v1::HEARTBEAT_MODE_NONE:
      spec.heartbeat.mode = core::HeartbeatMode::kNone;
      break;
    default:
      return core::FieldError{"spec.heartbeat.mode",
                              "unknown mode " + std::to_string(static_cast<int>(hb.mode())) +
                                  "; use PING, TEXT, PASSIVE or NONE"};
  }
  if (auto e = durationField(hb.has_interval(), hb.interval(), "spec.heartbeat.interval",
                             spec.heartbeat.interval)) {
    return *e;
  }
  if (auto e = durationField(hb.has_timeout(), hb.timeout(), "spec.heartbeat.timeout",
                             spec.heartbeat.timeout)) {
    return *e;
  }
  if (auto e =
          durationField(hb.has_unhealthy_interval(), hb.unhealthy_interval(),
                        "spec.heartbeat.unhealthy_interval", spec.heartbeat.unhealthy_interval)) {
    return *e;
  }
  spec.heartbeat.unhealthy_threshold = hb.unhealthy_threshold();
  spec.heartbeat.healthy_threshold = hb.healthy_threshold();
  spec.heartbeat.payload = hb.payload();
  spec.heartbeat.expect = hb.expect();

  const v1::BackoffPolicy& bo = proto.backoff();
  if (auto e = durationField(bo.has_initial(), bo.initial(), "spec.backoff.initial",
                             spec.backoff.initial)) {
    return *e;
  }
  if (auto e = durationField(bo.has_max(), bo.max(), "spec.backoff.max", spec.backoff.max)) {
    return *e;
  }
  if (auto e = durationField(bo.has_reset_after(), bo.reset_after(), "spec.backoff.reset_after",
                             spec.backoff.reset_after)) {
    return *e;
  }
  spec.backoff.multiplier = bo.multiplier();
  spec.backoff.jitter = bo.jitter();
  spec.backoff.jitter_enabled = !bo.no_jitter();

  if (auto e = durationField(proto.has_connect_timeout(), proto.connect_timeout(),
                             "spec.connect_timeout", spec.connect_timeout)) {
    return *e;
  }
  spec.tls.ca_file = proto.tls().ca_file();
  spec.tls.server_name = proto.tls().server_name();
  spec.tls.insecure_skip_verify = proto.tls().insecure_skip_verify();
  spec.tls.client_cert_file = proto.tls().client_cert_file();
  spec.tls.client_key_file = proto.tls().client_key_file();
  spec.max_message_bytes = proto.max_message_bytes();

  const v1::FlapPolicy& flap = proto.flapping();
  spec.flapping.threshold = flap.threshold();
  if (auto e = durationField(flap.has_window(), flap.window(), "spec.flapping.window",
                             spec.flapping.window)) {
    return *e;
  }
  if (auto e = durationField(flap.has_quiet_period(), flap.quiet_period(),
                             "spec.flapping.quiet_period", spec.flapping.quiet_period)) {
    return *e;
  }
  spec.flapping.enabled = !flap.disabled();
  return spec;
}

void specToProto(const core::EndpointSpec& spec, v1::EndpointSpec* proto, SecretHeaders secrets) {
  proto->set_id(spec.id);
  proto->set_url(spec.url);
  proto->mutable_labels()->insert(spec.labels.begin(), spec.labels.end());
  for (const core::Header& h : spec.headers) {
    v1::Header* out = proto->add_headers();
    out->set_name(h.name);
    const bool hide = secrets == SecretHeaders::kShown && core::isSecretHeader(h);
    out->set_value(hide ? core::kRedactedValue : h.value);
    out->set_secret(h.secret);
  }
  for (const std::string& p : spec.subprotocols) proto->add_subprotocols(p);

  v1::HeartbeatPolicy* hb = proto->mutable_heartbeat();
  switch (spec.heartbeat.mode) {
    case core::HeartbeatMode::kPing:
      hb->set_mode(v1::HEARTBEAT_MODE_PING);
      break;
    case core::HeartbeatMode::kText:
      hb->set_mode(v1::HEARTBEAT_MODE_TEXT);
      break;
    case core::HeartbeatMode::kPassive:
      hb->set_mode(v1::HEARTBEAT_MODE_PASSIVE);
      break;
    case core::HeartbeatMode::kNone:
      hb->set_mode(v1::HEARTBEAT_MODE_NONE);
      break;
  }
  // Durations without meaning in a mode stay zero in the core and unset here.
  setIfPositive(spec.heartbeat.interval, hb, &v1::HeartbeatPolicy::mutable_interval);
  setIfPositive(spec.heartbeat.timeout, hb, &v1::HeartbeatPolicy::mutable_timeout);
  setIfPositive(spec.heartbeat.unhealthy_interval, hb,
                &v1::HeartbeatPolicy::mutable_unhealthy_interval);
  hb->set_unhealthy_threshold(spec.heartbeat.unhealthy_threshold);
  hb->set_healthy_threshold(spec.heartbeat.healthy_threshold);
  hb->set_payload(spec.heartbeat.payload);
  hb->set_expect(spec.heartbeat.expect);

  v1::BackoffPolicy* bo = proto->mutable_backoff();
  toProto(spec.backoff.initial, bo->mutable_initial());
  bo->set_multiplier(spec.backoff.multiplier);
  bo->set_jitter(spec.backoff.jitter);
  toProto(spec.backoff.max, bo->mutable_max());
  toProto(spec.backoff.reset_after, bo->mutable_reset_after());
  bo->set_no_jitter(!spec.backoff.jitter_enabled);

  toProto(spec.connect_timeout, proto->mutable_connect_timeout());
  if (!(spec.tls == core::TlsOptions{})) {
    v1::TlsOptions* tls = proto->mutable_tls();
    tls->set_ca_file(spec.tls.ca_file);
    tls->set_server_name(spec.tls.server_name);
    tls->set_insecure_skip_verify(spec.tls.insecure_skip_verify);
    tls->set_client_cert_file(spec.tls.client_cert_file);
    tls->set_client_key_file(spec.tls.client_key_file);
  }
  proto->set_max_message_bytes(spec.max_message_bytes);

  v1::FlapPolicy* flap = proto->mutable_flapping();
  flap->set_threshold(spec.flapping.threshold);
  setIfPositive(spec.flapping.window, flap, &v1::FlapPolicy::mutable_window);
  setIfPositive(spec.flapping.quiet_period, flap, &v1::FlapPolicy::mutable_quiet_period);
  flap->set_disabled(!spec.flapping.enabled);
}

v1::Owner ownerToProto(EndpointOwner owner) {
  return owner == EndpointOwner::kConfigFile ? v1::OWNER_CONFIG_FILE : v1::OWNER_API;
}

std::string ProtoSpecCodec::encode(const core::EndpointSpec& spec) const {
  v1::EndpointSpec proto;
  specToProto(spec, &proto, SecretHeaders::kStored);
  std::string bytes;
  proto.SerializeToString(&bytes);
  return bytes;
}

namespace {

namespace pb = google::protobuf;

// Parses a serialized EndpointSpec whose text fields may hold bytes that are not UTF-8, which a
// proto3 parser refuses. Older wsvisor versions stored such specs (the config file passed raw
// bytes through before validation required UTF-8); they must still be read, so that validation
// can name the field instead of the whole record being unreadable.
//
// It parses with a copy of supervisor.proto in which every `string` is `bytes` (and the package
// renamed, so that the copy's messages refer to each other), then copies field by field, by
// number, into the generated message, whose setters take any bytes.
class LenientSpecParser {
 public:
  LenientSpecParser() : pool_(pb::DescriptorPool::generated_pool()), factory_(&pool_) {
    pb::FileDescriptorProto file;
    v1::EndpointSpec::descriptor()->file()->CopyTo(&file);
    const std::string package = file.package();  // wsvisor.v1
    file.set_name("wsvisor/v1/lenient_supervisor.proto");
    file.set_package(package + ".lenient");
    file.clear_service();
    for (pb::DescriptorProto& message : *file.mutable_message_type()) {
      relax(message, "." + package + ".");
    }
    if (const pb::FileDescriptor* built = pool_.BuildFile(file)) {
      prototype_ = factory_.GetPrototype(
          built->FindMessageTypeByName(v1::EndpointSpec::descriptor()->name()));
    }
  }

  bool parse(const std::string& bytes, v1::EndpointSpec* out) const {
    if (prototype_ == nullptr) return false;
    std::unique_ptr<pb::Message> lenient(prototype_->New());
    if (!lenient->ParseFromString(bytes)) return false;
    copy(*lenient, out);
    return true;
  }

 private:
  static void relax(pb::DescriptorProto& message, const std::string& prefix) {
    for (pb::FieldDescriptorProto& field : *message.mutable_field()) {
      if (field.type() == pb::FieldDescriptorProto::TYPE_STRING) {
        field.set_type(pb::FieldDescriptorProto::TYPE_BYTES);
      }
      if (field.type_name().rfind(prefix, 0) == 0) {
        field.set_type_name(prefix + "lenient." + field.type_name().substr(prefix.size()));
      }
    }
    for (pb::DescriptorProto& nested : *message.mutable_nested_type()) {
      // A map's key may not be bytes: its entries become plain repeated messages, which
      // reflection copies into the generated map all the same.
      nested.mutable_options()->clear_map_entry();
      relax(nested, prefix);
    }
  }

  static void copy(const pb::Message& from, pb::Message* to) {
    const pb::Reflection& in = *from.GetReflection();
    std::vector<const pb::FieldDescriptor*> fields;
    in.ListFields(from, &fields);
    for (const pb::FieldDescriptor* field : fields) {
      const pb::FieldDescriptor* target = to->GetDescriptor()->FindFieldByNumber(field->number());
      if (target == nullptr || target->cpp_type() != field->cpp_type() ||
          target->is_repeated() != field->is_repeated()) {
        continue;
      }
      if (!field->is_repeated()) {
        copyValue(from, field, -1, to, target);
        continue;
      }
      for (int i = 0; i < in.FieldSize(from, field); ++i) copyValue(from, field, i, to, target);
    }
  }

  // One value of `field` (index `i` of a repeated field, -1 for a singular one).
  static void copyValue(const pb::Message& from, const pb::FieldDescriptor* field, int i,
                        pb::Message* to, const pb::FieldDescriptor* target) {
    const pb::Reflection& in = *from.GetReflection();
    const pb::Reflection& out = *to->GetReflection();
    const bool repeated = i >= 0;
    switch (field->cpp_type()) {
#define WSV_COPY_SCALAR(CPPTYPE, Name)                                 \
  case pb::FieldDescriptor::CPPTYPE:                                   \
    if (repeated) {                                                    \
      out.Add##Name(to, target, in.GetRepeated##Name(from, field, i)); \
    } else {                                                           \
      out.Set##Name(to, target, in.Get##Name(from, field));            \
    }                                                                  \
    return;
      WSV_COPY_SCALAR(CPPTYPE_INT32, Int32)
      WSV_COPY_SCALAR(CPPTYPE_INT64, Int64)
      WSV_COPY_SCALAR(CPPTYPE_UINT32, UInt32)
      WSV_COPY_SCALAR(CPPTYPE_UINT64, UInt64)
      WSV_COPY_SCALAR(CPPTYPE_DOUBLE, Double)
      WSV_COPY_SCALAR(CPPTYPE_FLOAT, Float)
      WSV_COPY_SCALAR(CPPTYPE_BOOL, Bool)
      WSV_COPY_SCALAR(CPPTYPE_ENUM, EnumValue)
      WSV_COPY_SCALAR(CPPTYPE_STRING, String)
#undef WSV_COPY_SCALAR
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        if (repeated) {
          copy(in.GetRepeatedMessage(from, field, i), out.AddMessage(to, target));
        } else {
          copy(in.GetMessage(from, field), out.MutableMessage(to, target));
        }
        return;
    }
  }

  pb::DescriptorPool pool_;
  pb::DynamicMessageFactory factory_;
  const pb::Message* prototype_ = nullptr;
};

}  // namespace

std::optional<core::EndpointSpec> ProtoSpecCodec::decode(const std::string& bytes,
                                                         std::string& error) const {
  v1::EndpointSpec proto;
  if (!proto.ParseFromString(bytes)) {
    // Text that is not UTF-8 is the one thing a stricter parser refuses in a record that an
    // older wsvisor wrote; validation names the field.
    static const LenientSpecParser lenient;
    proto.Clear();
    if (!lenient.parse(bytes, &proto)) {
      error = "not a serialized wsvisor.v1.EndpointSpec";
      return std::nullopt;
    }
  }
  auto converted = specFromProto(proto);
  if (auto* field_error = std::get_if<core::FieldError>(&converted)) {
    error = field_error->toString();
    return std::nullopt;
  }
  return std::get<core::EndpointSpec>(std::move(converted));
}

v1::Health healthToProto(core::Health health) {
  switch (health) {
    case core::Health::kUnknown:
      return v1::HEALTH_UNKNOWN;
    case core::Health::kHealthy:
      return v1::HEALTH_HEALTHY;
    case core::Health::kUnhealthy:
      return v1::HEALTH_UNHEALTHY;
    case core::Health::kFlapping:
      return v1::HEALTH_FLAPPING;
  }
  return v1::HEALTH_UNKNOWN;
}

v1::FailureReason failureReasonToProto(core::FailureReason reason) {
  switch (reason) {
    case core::FailureReason::kNone:
      return v1::FAILURE_REASON_UNSPECIFIED;
    case core::FailureReason::kDns:
      return v1::FAILURE_REASON_DNS;
    case core::FailureReason::kConnectionRefused:
      return v1::FAILURE_REASON_CONNECTION_REFUSED;
    case core::FailureReason::kConnectTimeout:
      return v1::FAILURE_REASON_CONNECT_TIMEOUT;
    case core::FailureReason::kTls:
      return v1::FAILURE_REASON_TLS;
    case core::FailureReason::kHandshakeRejected:
      return v1::FAILURE_REASON_HANDSHAKE_REJECTED;
    case core::FailureReason::kPongTimeout:
      return v1::FAILURE_REASON_PONG_TIMEOUT;
    case core::FailureReason::kReplyMismatch:
      return v1::FAILURE_REASON_REPLY_MISMATCH;
    case core::FailureReason::kSilence:
      return v1::FAILURE_REASON_SILENCE;
    case core::FailureReason::kClosedByPeer:
      return v1::FAILURE_REASON_CLOSED_BY_PEER;
    case core::FailureReason::kMessageTooBig:
      return v1::FAILURE_REASON_MESSAGE_TOO_BIG;
    case core::FailureReason::kNetworkError:
      return v1::FAILURE_REASON_NETWORK_ERROR;
  }
  return v1::FAILURE_REASON_UNSPECIFIED;
}

namespace {

v1::ConnectionPhase phaseToProto(core::ConnectionPhase phase) {
  switch (phase) {
    case core::ConnectionPhase::kConnecting:
      return v1::CONNECTION_PHASE_CONNECTING;
    case core::ConnectionPhase::kOpen:
      return v1::CONNECTION_PHASE_OPEN;
    case core::ConnectionPhase::kBackingOff:
      return v1::CONNECTION_PHASE_BACKING_OFF;
    case core::ConnectionPhase::kStopped:
      return v1::CONNECTION_PHASE_UNSPECIFIED;
    case core::ConnectionPhase::kStoredSpecInvalid:
      return v1::CONNECTION_PHASE_STORED_SPEC_INVALID;
  }
  return v1::CONNECTION_PHASE_UNSPECIFIED;
}

v1::HealthEvent::Type eventTypeToProto(core::HealthEvent::Type type) {
  switch (type) {
    case core::HealthEvent::Type::kSnapshot:
      return v1::HealthEvent::TYPE_SNAPSHOT;
    case core::HealthEvent::Type::kSnapshotComplete:
      return v1::HealthEvent::TYPE_SNAPSHOT_COMPLETE;
    case core::HealthEvent::Type::kRegistered:
      return v1::HealthEvent::TYPE_REGISTERED;
    case core::HealthEvent::Type::kChanged:
      return v1::HealthEvent::TYPE_CHANGED;
    case core::HealthEvent::Type::kUnregistered:
      return v1::HealthEvent::TYPE_UNREGISTERED;
  }
  return v1::HealthEvent::TYPE_UNSPECIFIED;
}

}  // namespace

void failureToProto(const core::Failure& failure, v1::Failure* proto) {
  proto->set_reason(failureReasonToProto(failure.reason));
  proto->set_detail(failure.detail);
  proto->set_http_status(failure.http_status);
  proto->set_close_code(failure.close_code);
  toProto(toWall(failure.at), proto->mutable_time());
}

void statusToProto(const core::EndpointStatus& status, v1::EndpointStatus* proto) {
  proto->set_health(healthToProto(status.health));
  proto->set_phase(phaseToProto(status.phase));
  if (status.last_rtt) toProto(*status.last_rtt, proto->mutable_last_rtt());
  if (status.smoothed_rtt) toProto(*status.smoothed_rtt, proto->mutable_smoothed_rtt());
  proto->set_consecutive_failures(status.consecutive_failures);
  if (status.last_failure) failureToProto(*status.last_failure, proto->mutable_last_failure());
  toProto(toWall(status.last_transition), proto->mutable_last_transition_time());
  proto->set_reconnect_attempts(status.reconnect_attempts);
  if (status.next_attempt)
    toProto(toWall(*status.next_attempt), proto->mutable_next_attempt_time());
  proto->set_heartbeats_sent(status.heartbeats_sent);
  proto->set_underlying_health(healthToProto(status.underlying_health));
  proto->set_transition_reason(status.transition_reason);
  proto->set_supervised_by(status.supervised_by);
}

void probeResultToProto(const core::ProbeResult& result, v1::ProbeEndpointResponse* proto) {
  proto->set_success(result.outcome == core::ProbeResult::Outcome::kSucceeded);
  if (result.failure) failureToProto(*result.failure, proto->mutable_failure());
  if (result.connect_time) toProto(*result.connect_time, proto->mutable_connect_time());
  for (core::Duration rtt : result.rtts) toProto(rtt, proto->add_rtts());
  proto->set_heartbeats_sent(static_cast<uint32_t>(result.heartbeats_sent));
  toProto(result.duration, proto->mutable_duration());
}

void healthEventToProto(const core::HealthEvent& event, v1::HealthEvent* proto) {
  proto->set_type(eventTypeToProto(event.type));
  proto->set_revision(event.revision);
  if (event.type == core::HealthEvent::Type::kSnapshotComplete) return;
  proto->set_endpoint_id(event.endpoint_id);
  proto->mutable_labels()->insert(event.labels.begin(), event.labels.end());
  statusToProto(event.status, proto->mutable_status());
  if (event.previous_health) proto->set_previous_health(healthToProto(*event.previous_health));
  proto->set_coalesced(event.coalesced);
  if (event.time != core::WallTime{}) toProto(event.time, proto->mutable_time());
}

void historyToProto(const EndpointHistory& history, v1::GetEndpointHistoryResponse* proto) {
  for (const HealthTransition& transition : history.transitions) {
    v1::HealthTransition* entry = proto->add_transitions();
    if (transition.time != core::WallTime{}) toProto(transition.time, entry->mutable_time());
    entry->set_previous_health(healthToProto(transition.previous_health));
    entry->set_health(healthToProto(transition.health));
    entry->set_reason(transition.reason);
    if (transition.failure) failureToProto(*transition.failure, entry->mutable_failure());
    if (transition.last_rtt) toProto(*transition.last_rtt, entry->mutable_last_rtt());
    if (transition.smoothed_rtt) toProto(*transition.smoothed_rtt, entry->mutable_smoothed_rtt());
    entry->set_revision(transition.revision);
  }
  proto->set_dropped(history.dropped);
}

namespace {

core::Health healthFromProto(v1::Health health) {
  switch (health) {
    case v1::HEALTH_HEALTHY:
      return core::Health::kHealthy;
    case v1::HEALTH_UNHEALTHY:
      return core::Health::kUnhealthy;
    case v1::HEALTH_FLAPPING:
      return core::Health::kFlapping;
    default:
      return core::Health::kUnknown;
  }
}

core::ConnectionPhase phaseFromProto(v1::ConnectionPhase phase) {
  switch (phase) {
    case v1::CONNECTION_PHASE_CONNECTING:
      return core::ConnectionPhase::kConnecting;
    case v1::CONNECTION_PHASE_OPEN:
      return core::ConnectionPhase::kOpen;
    case v1::CONNECTION_PHASE_BACKING_OFF:
      return core::ConnectionPhase::kBackingOff;
    case v1::CONNECTION_PHASE_STORED_SPEC_INVALID:
      return core::ConnectionPhase::kStoredSpecInvalid;
    default:
      return core::ConnectionPhase::kStopped;
  }
}

core::FailureReason failureReasonFromProto(v1::FailureReason reason) {
  for (int i = 0; i < core::kFailureReasonCount; ++i) {
    const auto candidate = static_cast<core::FailureReason>(i);
    if (failureReasonToProto(candidate) == reason) return candidate;
  }
  return core::FailureReason::kNone;
}

}  // namespace

core::EndpointStatus statusFromProto(const v1::EndpointStatus& proto) {
  core::EndpointStatus status;
  status.health = healthFromProto(proto.health());
  status.phase = phaseFromProto(proto.phase());
  if (proto.has_last_rtt()) status.last_rtt = fromProto(proto.last_rtt());
  if (proto.has_smoothed_rtt()) status.smoothed_rtt = fromProto(proto.smoothed_rtt());
  status.consecutive_failures = proto.consecutive_failures();
  if (proto.has_last_failure()) {
    const v1::Failure& failure = proto.last_failure();
    status.last_failure =
        core::Failure::make(failureReasonFromProto(failure.reason()), failure.detail(),
                            failure.http_status(), failure.close_code());
    status.last_failure->at = fromWall(failure.time());
  }
  status.last_transition = fromWall(proto.last_transition_time());
  status.reconnect_attempts = proto.reconnect_attempts();
  if (proto.has_next_attempt_time()) status.next_attempt = fromWall(proto.next_attempt_time());
  status.heartbeats_sent = proto.heartbeats_sent();
  status.underlying_health = healthFromProto(proto.underlying_health());
  status.transition_reason = proto.transition_reason();
  status.supervised_by = proto.supervised_by();
  return status;
}

}  // namespace wsvisor::service

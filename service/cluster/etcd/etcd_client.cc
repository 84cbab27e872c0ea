#include "service/cluster/etcd/etcd_client.h"

#include <algorithm>
#include <thread>

namespace wsvisor::service::etcd {

namespace {

using Clock = std::chrono::steady_clock;

// Keys per page of getPrefix().
constexpr int64_t kPrefixPageSize = 1000;
// call(): pauses between rounds over the members.
constexpr std::chrono::milliseconds kFirstRoundPause{50};
constexpr std::chrono::milliseconds kMaxRoundPause{500};
// getPrefix() pages until `more` is false; this bounds the loop should a server never say so.
constexpr int kMaxPrefixPages = 1000000;

etcdserverpb::Compare modRevisionEquals(const std::string& key, int64_t mod_revision) {
  etcdserverpb::Compare compare;
  compare.set_key(key);
  compare.set_target(etcdserverpb::Compare::MOD);
  compare.set_result(etcdserverpb::Compare::EQUAL);
  compare.set_mod_revision(mod_revision);
  return compare;
}

}  // namespace

std::string prefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  for (size_t i = end.size(); i > 0; --i) {
    if (static_cast<unsigned char>(end[i - 1]) < 0xff) {
      end[i - 1] = static_cast<char>(static_cast<unsigned char>(end[i - 1]) + 1);
      end.resize(i);
      return end;
    }
  }
  // Every byte is 0xff: no key is greater with this prefix, so the range runs to the end.
  end.assign(1, '\0');
  return end;
}

EtcdKeyValue fromProto(const mvccpb::KeyValue& kv) {
  return {kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease()};
}

// ----- EtcdCallCanceller

void EtcdCallCanceller::cancel() {
  MutexLock lock(mu_);
  cancelled_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

bool EtcdCallCanceller::cancelled() const {
  MutexLock lock(mu_);
  return cancelled_;
}

bool EtcdCallCanceller::enter(grpc::ClientContext* context) {
  MutexLock lock(mu_);
  if (cancelled_) return false;
  context_ = context;
  return true;
}

void EtcdCallCanceller::leave() {
  MutexLock lock(mu_);
  context_ = nullptr;
}

// ----- EtcdClient

EtcdClient::EtcdClient(EtcdClientOptions options)
    : options_(std::move(options)),
      channels_(options_.endpoints, options_.credentials, options_.tls_server_name) {}

std::string EtcdClient::describe() const {
  std::string text = "etcd://";
  for (size_t i = 0; i < options_.endpoints.size(); ++i) {
    if (i > 0) text += ",";
    text += options_.endpoints[i];
  }
  return text;
}

std::optional<EtcdError> EtcdClient::call(std::string_view method, bool may_resend,
                                          const Attempt& attempt) {
  return call(method, may_resend, Clock::now() + options_.call_timeout, attempt);
}

bool EtcdClient::visitConnected(Clock::time_point deadline, std::vector<std::string>& failures,
                                const std::function<bool(size_t)>& visit,
                                EtcdCallCanceller* canceller) {
  failures.resize(channels_.size());
  // First pass: members in preference order, leaving those whose connection is known to be down
  // for later; second pass: those, with whatever time is left. At most one visit per member.
  const std::vector<size_t> order = channels_.order();
  std::vector<size_t> known_down;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t index : pass == 0 ? order : known_down) {
      if (Clock::now() >= deadline || (canceller != nullptr && canceller->cancelled())) {
        return false;
      }
      if (pass == 0 && order.size() > 1 && channels_.knownDown(index)) {
        known_down.push_back(index);
        continue;
      }
      std::string state;
      const auto connect_deadline = std::min(deadline, Clock::now() + options_.connect_timeout);
      if (!channels_.waitConnected(index, connect_deadline, state)) {
        // "over TLS" because a refused handshake (no client certificate) can read like a
        // network failure in gRPC's message.
        failures[index] = std::string("not connected") + (options_.credentials ? " over TLS" : "") +
                          " (" + state + ")" + channels_.connectFailure(index);
        channels_.markFailed(index);
        continue;
      }
      if (visit(index)) return true;
    }
  }
  return false;
}

std::string EtcdClient::describeFailures(const std::vector<std::string>& failures) const {
  std::string text;
  for (size_t i = 0; i < failures.size(); ++i) {
    if (failures[i].empty()) continue;
    text += text.empty() ? ": " : "; ";
    text += channels_.member(i).address + ": " + failures[i];
  }
  return text;
}

std::optional<EtcdError> EtcdClient::call(std::string_view method, bool may_resend,
                                          Clock::time_point deadline, const Attempt& attempt,
                                          EtcdCallCanceller* canceller) {
  const auto budget =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  // Everything but reads changes etcd's state; a change whose answer was lost may have happened.
  const bool writes = method != "Range" && method != "LeaseTimeToLive";
  std::vector<std::string> failures;  // the last failure of each member
  std::optional<EtcdError> outcome;
  auto pause = kFirstRoundPause;
  // Rounds over the members until one answers, the call fails for good, or the deadline: a
  // leader election ("etcdserver: no leader") or a member restarting takes a second or two, and
  // a call should ride it out rather than fail at once. Each round either ends the call or
  // waits a positive pause, so the loop ends by the deadline.
  for (;;) {
    const bool finished = visitConnected(
        deadline, failures,
        [&](size_t index) {
          const EtcdChannels::Member& member = channels_.member(index);
          grpc::ClientContext context;
          const auto attempt_deadline = std::min(deadline, Clock::now() + options_.attempt_timeout);
          context.set_deadline(toGrpcDeadline(attempt_deadline));
          if (canceller != nullptr && !canceller->enter(&context)) return false;
          grpc::Status status = attempt(member, context);
          if (canceller != nullptr) canceller->leave();
          if (status.ok()) {
            channels_.markAnswered(index);
            outcome.reset();
            return true;
          }
          // The attempt's own deadline, not the call's: the member did not answer in time.
          const bool attempt_timed_out =
              status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
              attempt_deadline < deadline;
          if (attempt_timed_out) {
            status = grpc::Status(
                grpc::StatusCode::UNAVAILABLE,
                "no answer within " + std::to_string(options_.attempt_timeout.count()) + " ms");
          }
          outcome = errorFrom(member.address, method, status);
          if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && writes) {
            outcome->message += " (no answer in time: it may or may not have been applied)";
          }
          if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return true;
          channels_.markFailed(index);
          if (!may_resend) {
            outcome->message += " (the request was sent: it may or may not have been applied)";
            return true;
          }
          failures[index] = statusCodeName(status.error_code()) + ": " + status.error_message();
          return false;
        },
        canceller);
    if (finished) return outcome;
    if (canceller != nullptr && canceller->cancelled()) {
      return EtcdError{grpc::StatusCode::CANCELLED, "etcd " + std::string(method) + ": cancelled"};
    }
    if (Clock::now() + pause >= deadline) break;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kMaxRoundPause);
  }
  return EtcdError{grpc::StatusCode::UNAVAILABLE,
                   "etcd " + std::string(method) + " to " + describe() + " failed within " +
                       std::to_string(budget.count()) + " ms" + describeFailures(failures)};
}

std::optional<EtcdError> EtcdClient::get(const std::string& key, std::optional<EtcdKeyValue>& out,
                                         int64_t* revision) {
  EtcdRange range_out;
  if (auto error = range(key, "", 0, 0, range_out)) return error;
  out.reset();
  if (!range_out.kvs.empty()) out = std::move(range_out.kvs.front());
  if (revision != nullptr) *revision = range_out.revision;
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::range(const std::string& key, const std::string& range_end,
                                           int64_t limit, int64_t revision, EtcdRange& out) {
  etcdserverpb::RangeRequest request;
  request.set_key(key);
  request.set_range_end(range_end);
  request.set_limit(limit);
  request.set_revision(revision);
  etcdserverpb::RangeResponse response;
  if (auto error = call("Range", true, [&](const auto& member, grpc::ClientContext& context) {
        return member.kv->Range(&context, request, &response);
      })) {
    return error;
  }
  out.kvs.clear();
  out.kvs.reserve(static_cast<size_t>(response.kvs_size()));
  for (const auto& kv : response.kvs()) out.kvs.push_back(fromProto(kv));
  out.more = response.more();
  out.revision = response.header().revision();
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::probe(const std::string& prefix, Clock::time_point deadline) {
  etcdserverpb::RangeRequest request;
  request.set_key(prefix);
  request.set_range_end(prefixRangeEnd(prefix));
  request.set_limit(1);
  request.set_keys_only(true);
  etcdserverpb::RangeResponse response;
  return call("Range", true, deadline, [&](const auto& member, grpc::ClientContext& context) {
    return member.kv->Range(&context, request, &response);
  });
}

std::optional<EtcdError> EtcdClient::getPrefix(const std::string& prefix, EtcdRange& out) {
  const std::string end = prefixRangeEnd(prefix);
  out = EtcdRange{};
  std::string from = prefix;
  for (int page = 0; page < kMaxPrefixPages; ++page) {
    EtcdRange part;
    if (auto error = range(from, end, kPrefixPageSize, out.revision, part)) return error;
    if (out.revision == 0) out.revision = part.revision;
    for (auto& kv : part.kvs) out.kvs.push_back(std::move(kv));
    if (!part.more || out.kvs.empty()) return std::nullopt;
    // The next page starts just after the last key ("\0" is the smallest suffix).
    from = out.kvs.back().key + std::string(1, '\0');
  }
  return EtcdError{grpc::StatusCode::OUT_OF_RANGE, "etcd Range of " + prefix + ": more than " +
                                                       std::to_string(kMaxPrefixPages) + " pages"};
}

std::optional<EtcdError> EtcdClient::put(const std::string& key, const std::string& value,
                                         int64_t lease, int64_t* revision) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  if (auto error = call("Put", true, [&](const auto& member, grpc::ClientContext& context) {
        return member.kv->Put(&context, request, &response);
      })) {
    return error;
  }
  if (revision != nullptr) *revision = response.header().revision();
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::remove(const std::string& key, int64_t* deleted) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key);
  etcdserverpb::DeleteRangeResponse response;
  if (auto error = call("DeleteRange", true, [&](const auto& member, grpc::ClientContext& context) {
        return member.kv->DeleteRange(&context, request, &response);
      })) {
    return error;
  }
  if (deleted != nullptr) *deleted = response.deleted();
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::removePrefix(const std::string& prefix, int64_t* deleted) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(prefix);
  request.set_range_end(prefixRangeEnd(prefix));
  etcdserverpb::DeleteRangeResponse response;
  if (auto error = call("DeleteRange", true, [&](const auto& member, grpc::ClientContext& context) {
        return member.kv->DeleteRange(&context, request, &response);
      })) {
    return error;
  }
  if (deleted != nullptr) *deleted = response.deleted();
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::txn(const etcdserverpb::TxnRequest& request,
                                         etcdserverpb::TxnResponse& response, bool unconditional) {
  return call("Txn", unconditional && request.compare_size() == 0,
              [&](const auto& member, grpc::ClientContext& context) {
                response.Clear();
                return member.kv->Txn(&context, request, &response);
              });
}

std::optional<EtcdError> EtcdClient::swap(std::string_view method, etcdserverpb::TxnRequest request,
                                          const std::string& key, EtcdSwap& out) {
  // On a conflict, read the key in the same transaction: the caller learns what is there now.
  request.add_failure()->mutable_request_range()->set_key(key);
  etcdserverpb::TxnResponse response;
  if (auto error = call(method, false, [&](const auto& member, grpc::ClientContext& context) {
        response.Clear();
        return member.kv->Txn(&context, request, &response);
      })) {
    return error;
  }
  out = EtcdSwap{};
  out.succeeded = response.succeeded();
  out.revision = response.header().revision();
  if (!out.succeeded && response.responses_size() > 0 &&
      response.responses(0).response_range().kvs_size() > 0) {
    out.current = fromProto(response.responses(0).response_range().kvs(0));
  }
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::createIfAbsent(const std::string& key,
                                                    const std::string& value, int64_t lease,
                                                    EtcdSwap& out) {
  etcdserverpb::TxnRequest request;
  // A key that does not exist has create_revision 0.
  auto* compare = request.add_compare();
  compare->set_key(key);
  compare->set_target(etcdserverpb::Compare::CREATE);
  compare->set_result(etcdserverpb::Compare::EQUAL);
  compare->set_create_revision(0);
  auto* put = request.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  return swap("Txn(create if absent)", std::move(request), key, out);
}

std::optional<EtcdError> EtcdClient::updateIfModRevision(const std::string& key,
                                                         const std::string& value,
                                                         int64_t mod_revision, int64_t lease,
                                                         EtcdSwap& out) {
  etcdserverpb::TxnRequest request;
  *request.add_compare() = modRevisionEquals(key, mod_revision);
  auto* put = request.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  return swap("Txn(update if mod_revision " + std::to_string(mod_revision) + ")",
              std::move(request), key, out);
}

std::optional<EtcdError> EtcdClient::removeIfModRevision(const std::string& key,
                                                         int64_t mod_revision, EtcdSwap& out) {
  etcdserverpb::TxnRequest request;
  *request.add_compare() = modRevisionEquals(key, mod_revision);
  request.add_success()->mutable_request_delete_range()->set_key(key);
  return swap("Txn(delete if mod_revision " + std::to_string(mod_revision) + ")",
              std::move(request), key, out);
}

std::optional<EtcdError> EtcdClient::compact(int64_t revision) {
  etcdserverpb::CompactionRequest request;
  request.set_revision(revision);
  etcdserverpb::CompactionResponse response;
  return call("Compact", true, [&](const auto& member, grpc::ClientContext& context) {
    return member.kv->Compact(&context, request, &response);
  });
}

std::optional<EtcdError> EtcdClient::grantLease(int64_t ttl_seconds, EtcdLease& out) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse response;
  // Sending a grant twice may leave an unused lease behind, which expires by itself: harmless.
  if (auto error = call("LeaseGrant", true, [&](const auto& member, grpc::ClientContext& context) {
        return member.lease->LeaseGrant(&context, request, &response);
      })) {
    return error;
  }
  if (!response.error().empty()) {
    return EtcdError{grpc::StatusCode::UNKNOWN, "etcd LeaseGrant: " + response.error()};
  }
  out = EtcdLease{response.id(), response.ttl()};
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::revokeLease(int64_t id) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(id);
  etcdserverpb::LeaseRevokeResponse response;
  return call("LeaseRevoke", true, [&](const auto& member, grpc::ClientContext& context) {
    return member.lease->LeaseRevoke(&context, request, &response);
  });
}

std::optional<EtcdError> EtcdClient::keepAliveOnce(int64_t id, Clock::time_point deadline,
                                                   int64_t& ttl_seconds,
                                                   EtcdCallCanceller* canceller) {
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(id);
  etcdserverpb::LeaseKeepAliveResponse response;
  auto attempt = [&](const EtcdChannels::Member& member, grpc::ClientContext& context) {
    auto stream = member.lease->LeaseKeepAlive(&context);
    bool answered = false;
    // etcd answers each request before it reads the next, so after WritesDone() the one
    // response comes, then the end of the stream.
    if (stream->Write(request)) {
      stream->WritesDone();
      answered = stream->Read(&response);
    }
    grpc::Status status = stream->Finish();
    if (status.ok() && !answered) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the keepalive stream ended unanswered");
    }
    return status;
  };
  if (auto error = call("LeaseKeepAlive", true, deadline, attempt, canceller)) return error;
  ttl_seconds = std::max<int64_t>(0, response.ttl());
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::leaseTimeToLive(int64_t id, int64_t& ttl_seconds) {
  etcdserverpb::LeaseTimeToLiveRequest request;
  request.set_id(id);
  etcdserverpb::LeaseTimeToLiveResponse response;
  if (auto error =
          call("LeaseTimeToLive", true, [&](const auto& member, grpc::ClientContext& context) {
            return member.lease->LeaseTimeToLive(&context, request, &response);
          })) {
    return error;
  }
  ttl_seconds = response.ttl();
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::memberStatus(size_t index, etcdserverpb::StatusResponse& out) {
  const EtcdChannels::Member& member = channels_.member(index);
  grpc::ClientContext context;
  context.set_deadline(toGrpcDeadline(Clock::now() + options_.call_timeout));
  const grpc::Status status =
      member.maintenance->Status(&context, etcdserverpb::StatusRequest(), &out);
  if (!status.ok()) return errorFrom(member.address, "Status", status);
  return std::nullopt;
}

std::optional<EtcdError> EtcdClient::connectedMember(Clock::time_point deadline, size_t& index) {
  std::vector<std::string> failures;
  if (visitConnected(deadline, failures, [&](size_t candidate) {
        index = candidate;
        return true;
      })) {
    return std::nullopt;
  }
  return EtcdError{grpc::StatusCode::UNAVAILABLE,
                   "no member of " + describe() + " is connected" + describeFailures(failures)};
}

}  // namespace wsvisor::service::etcd

#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "supervisor/mutex.h"

namespace wsvisor::service {

// What a caller may do with wsvisor.v1.Supervisor.
enum class Access { kRead, kWrite };

// One line of the --auth-token-file: "NAME ACCESS TOKEN". Only a digest of the token is kept, so
// a memory dump or a debugger shows no usable credential and comparisons take the same time
// whatever the token.
struct ApiToken {
  std::string name;  // shown in logs and errors instead of the token
  Access access = Access::kRead;
  std::array<unsigned char, 32> digest{};  // SHA-256 of the token
};

// The tokens of a file, or the first problem in it as "FILE:LINE: why".
std::variant<std::vector<ApiToken>, std::string> parseTokenFile(std::string_view text,
                                                                std::string_view file_name);
std::variant<std::vector<ApiToken>, std::string> loadTokenFile(const std::string& path);

// The outcome of checking one call.
struct AccessDecision {
  enum class Verdict { kAllowed, kUnauthenticated, kPermissionDenied };
  Verdict verdict = Verdict::kAllowed;
  std::string message;  // why it was refused; empty when allowed
};

// Bearer-token authorization of the Supervisor API (--auth-token-file). Thread-safe: calls are
// checked on gRPC's threads while SIGHUP may replace the tokens.
class ApiAccess {
 public:
  explicit ApiAccess(std::vector<ApiToken> tokens);

  // `authorization` is the value of the call's "authorization" metadata (nullopt when absent);
  // `method` names the RPC in messages.
  AccessDecision check(std::optional<std::string_view> authorization, Access needed,
                       std::string_view method) const;

  // Replaces every token at once; calls in flight keep the set they started with.
  void replaceTokens(std::vector<ApiToken> tokens);
  size_t tokenCount() const;

 private:
  using TokenSet = std::vector<ApiToken>;
  mutable Mutex mu_;
  std::shared_ptr<const TokenSet> tokens_ WSV_GUARDED_BY(mu_);
};

}  // namespace wsvisor::service

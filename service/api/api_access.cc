#include "service/api/api_access.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

namespace wsvisor::service {

namespace {

// Short tokens can be guessed; 16 characters of base64 are 96 bits.
constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenLength = 1024;
constexpr size_t kMaxNameLength = 64;

std::array<unsigned char, 32> sha256(std::string_view text) {
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

// RFC 7235 token68: what a bearer credential may contain.
bool isToken68(std::string_view token) {
  size_t i = 0;
  for (; i < token.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(token[i]);
    if (std::isalnum(c) == 0 && c != '-' && c != '.' && c != '_' && c != '~' && c != '+' &&
        c != '/') {
      break;
    }
  }
  if (i == 0) return false;
  for (; i < token.size(); ++i) {
    if (token[i] != '=') return false;
  }
  return true;
}

bool isName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (const char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

std::vector<std::string> fields(const std::string& line) {
  std::istringstream stream(line);
  std::vector<std::string> out;
  for (std::string field; stream >> field;) out.push_back(field);
  return out;
}

const char* accessName(Access access) { return access == Access::kWrite ? "write" : "read"; }

bool startsWithIgnoringCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::variant<std::vector<ApiToken>, std::string> parseTokenFile(std::string_view text,
                                                                std::string_view file_name) {
  std::vector<ApiToken> tokens;
  std::set<std::string> names;
  std::set<std::array<unsigned char, 32>> digests;
  std::istringstream lines{std::string(text)};
  size_t line_number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++line_number;
    const auto where = std::string(file_name) + ":" + std::to_string(line_number) + ": ";
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    const std::vector<std::string> parts = fields(line);
    if (parts.empty()) continue;
    if (parts.size() != 3) {
      return where + "want 'NAME ACCESS TOKEN' (3 fields), got " + std::to_string(parts.size());
    }
    ApiToken token;
    token.name = parts[0];
    if (!isName(token.name)) {
      return where + "name must be 1-64 characters of [A-Za-z0-9._-]";
    }
    if (!names.insert(token.name).second) return where + "name '" + token.name + "' given twice";
    if (parts[1] == "read") {
      token.access = Access::kRead;
    } else if (parts[1] == "write") {
      token.access = Access::kWrite;
    } else {
      return where + "access must be read or write, got '" + parts[1] + "'";
    }
    const std::string& secret = parts[2];
    // The token itself is never echoed: the file may be a log reader's only view of it.
    if (secret.size() < kMinTokenLength || secret.size() > kMaxTokenLength) {
      return where + "token of '" + token.name + "' must be 16-1024 characters, got " +
             std::to_string(secret.size());
    }
    if (!isToken68(secret)) {
      return where + "token of '" + token.name +
             "' may only contain [A-Za-z0-9-._~+/] with trailing '=' (RFC 7235 token68)";
    }
    token.digest = sha256(secret);
    if (!digests.insert(token.digest).second) {
      return where + "token of '" + token.name + "' is the same as an earlier one";
    }
    tokens.push_back(std::move(token));
  }
  if (tokens.empty()) {
    return std::string(file_name) +
           ": no tokens (want lines 'NAME ACCESS TOKEN'); an empty file would lock every "
           "client out";
  }
  return tokens;
}

std::variant<std::vector<ApiToken>, std::string> loadTokenFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return "cannot read the token file " + path;
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return "cannot read the token file " + path;
  return parseTokenFile(text.str(), path);
}

ApiAccess::ApiAccess(std::vector<ApiToken> tokens)
    : tokens_(std::make_shared<const TokenSet>(std::move(tokens))) {}

void ApiAccess::replaceTokens(std::vector<ApiToken> tokens) {
  auto replacement = std::make_shared<const TokenSet>(std::move(tokens));
  MutexLock lock(mu_);
  tokens_ = std::move(replacement);
}

size_t ApiAccess::tokenCount() const {
  MutexLock lock(mu_);
  return tokens_->size();
}

AccessDecision ApiAccess::check(std::optional<std::string_view> authorization, Access needed,
                                std::string_view method) const {
  using Verdict = AccessDecision::Verdict;
  if (!authorization) {
    return {Verdict::kUnauthenticated,
            "missing bearer token: send metadata 'authorization: Bearer <token>' (wsvisorctl: "
            "--token-file or $WSVISOR_TOKEN_FILE)"};
  }
  std::string_view credential = *authorization;
  constexpr std::string_view kScheme = "bearer ";
  if (!startsWithIgnoringCase(credential, kScheme)) {
    return {Verdict::kUnauthenticated, "metadata 'authorization' must be 'Bearer <token>'"};
  }
  credential.remove_prefix(kScheme.size());
  while (!credential.empty() && credential.front() == ' ') credential.remove_prefix(1);

  std::shared_ptr<const TokenSet> tokens;
  {
    MutexLock lock(mu_);
    tokens = tokens_;
  }
  const auto digest = sha256(credential);
  // Every token is compared, in constant time, so timing tells nothing about near misses.
  const ApiToken* match = nullptr;
  for (const ApiToken& token : *tokens) {
    if (CRYPTO_memcmp(token.digest.data(), digest.data(), digest.size()) == 0) match = &token;
  }
  if (match == nullptr) {
    return {Verdict::kUnauthenticated, "the bearer token is not valid (unknown or revoked)"};
  }
  if (needed == Access::kWrite && match->access != Access::kWrite) {
    return {Verdict::kPermissionDenied,
            "token '" + match->name + "' has " + accessName(match->access) + " access; " +
                std::string(method) + " needs " + accessName(needed) + " access"};
  }
  return {};
}

}  // namespace wsvisor::service

#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace wsvisor {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Process-wide log threshold; lines below it cost one comparison.
void setLogLevel(LogLevel level);
bool logEnabled(LogLevel level);
// Parses "debug", "info", "warning" (or "warn"), "error".
bool parseLogLevel(std::string_view text, LogLevel& level);
// Writes one line to stderr: "2026-11-27T10:00:00.123Z INFO message". Thread-safe; one write per
// line so that lines from several threads never interleave.
void writeLogLine(LogLevel level, std::string_view message);

}  // namespace wsvisor

// WSV_LOG(kInfo) << "endpoint " << id << " is healthy";  — the stream is built only when enabled.
#define WSV_LOG(level)                                                                      \
  for (bool wsv_log_once = ::wsvisor::logEnabled(::wsvisor::LogLevel::level); wsv_log_once; \
       wsv_log_once = false)                                                                \
  ::wsvisor::LogLine(::wsvisor::LogLevel::level).stream()

namespace wsvisor {
class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine() { writeLogLine(level_, stream_.str()); }
  std::ostringstream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace wsvisor

#include "service/api/duration_text.h"

#include <cstdint>
#include <limits>

namespace wsvisor::service {

namespace {

using Nanos = __int128;  // wide enough for any product below without overflow checks per step

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr std::string_view kUnitHint = "(use ns, us, ms, s, m or h)";

struct Unit {
  std::string_view name;
  int64_t nanos;
};

constexpr Unit kUnits[] = {
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // µs, MICRO SIGN
    {"\xCE\xBCs", 1'000},  // μs, GREEK SMALL LETTER MU
    {"ms", 1'000'000},
    {"s", kNanosPerSecond},
    {"m", 60 * kNanosPerSecond},
    {"h", 3600 * kNanosPerSecond},
};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

// The unit named exactly `name`, or null.
const Unit* findUnit(std::string_view name) {
  for (const Unit& unit : kUnits) {
    if (unit.name == name) return &unit;
  }
  return nullptr;
}

// Appends `value / scale` with at most three decimals and no trailing zeros. `scale` is 1 (the
// value is whole nanoseconds) or a multiple of 1000.
void appendScaled(std::string& out, uint64_t value, uint64_t scale) {
  out += std::to_string(value / scale);
  if (scale < 1000) return;
  const uint64_t fraction = (value % scale) / (scale / 1000);
  if (fraction == 0) return;
  std::string digits = std::to_string(fraction);
  digits.insert(0, 3 - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  out += '.';
  out += digits;
}

}  // namespace

std::optional<std::chrono::nanoseconds> parseDuration(std::string_view text, std::string& error) {
  const std::string prefix = "invalid duration " + quoted(text) + ": ";
  if (text.empty()) {
    error = "empty duration (want e.g. 250ms, 10s or 1m)";
    return std::nullopt;
  }
  if (text == "0") return std::chrono::nanoseconds(0);
  if (text.front() == '-') {
    error = prefix + "must not be negative";
    return std::nullopt;
  }

  constexpr Nanos kMax = std::numeric_limits<int64_t>::max();
  Nanos total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    // <digits>[.<digits>] or .<digits>
    const size_t number_start = pos;
    Nanos whole = 0;
    while (pos < text.size() && isDigit(text[pos])) {
      whole = whole * 10 + (text[pos] - '0');
      if (whole > kMax) {
        error = prefix + "too large (at most 2562047h)";
        return std::nullopt;
      }
      ++pos;
    }
    const bool has_whole = pos > number_start;
    std::string_view fraction;
    if (pos < text.size() && text[pos] == '.') {
      const size_t fraction_start = ++pos;
      while (pos < text.size() && isDigit(text[pos])) ++pos;
      fraction = text.substr(fraction_start, pos - fraction_start);
    }
    if (!has_whole && fraction.empty()) {
      error = prefix + "expected a number at " + quoted(text.substr(number_start));
      return std::nullopt;
    }
    const std::string_view number = text.substr(number_start, pos - number_start);
    // The unit is everything up to the next number, so that "3sec" is reported as an unknown
    // unit "sec" rather than as "3s" followed by something odd.
    size_t unit_end = pos;
    while (unit_end < text.size() && !isDigit(text[unit_end]) && text[unit_end] != '.') {
      ++unit_end;
    }
    const std::string_view unit_name = text.substr(pos, unit_end - pos);
    if (unit_name.empty()) {
      error = prefix + "missing unit after " + quoted(number) + " " + std::string(kUnitHint);
      return std::nullopt;
    }
    const Unit* unit = findUnit(unit_name);
    if (unit == nullptr) {
      error = prefix + "unknown unit " + quoted(unit_name) + " " + std::string(kUnitHint);
      return std::nullopt;
    }
    pos = unit_end;

    Nanos term = whole * unit->nanos;
    // The fraction contributes digits x unit / 10^n nanoseconds, which must come out whole.
    while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
    if (fraction.size() > 18) {
      error = prefix + "finer than 1ns";
      return std::nullopt;
    }
    if (!fraction.empty()) {
      Nanos digits = 0;
      Nanos scale = 1;
      for (char c : fraction) {
        digits = digits * 10 + (c - '0');
        scale *= 10;
      }
      const Nanos numerator = digits * unit->nanos;
      if (numerator % scale != 0) {
        error = prefix + "finer than 1ns";
        return std::nullopt;
      }
      term += numerator / scale;
    }
    total += term;
    if (total > kMax) {
      error = prefix + "too large (at most 2562047h)";
      return std::nullopt;
    }
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

google::protobuf::Duration toProtoDuration(std::chrono::nanoseconds duration) {
  google::protobuf::Duration proto;
  proto.set_seconds(duration.count() / kNanosPerSecond);
  proto.set_nanos(static_cast<int32_t>(duration.count() % kNanosPerSecond));
  return proto;
}

std::string formatDuration(const google::protobuf::Duration& duration) {
  // A valid Duration spans +/-10,000 years, more nanoseconds than int64 holds.
  Nanos total = Nanos{duration.seconds()} * kNanosPerSecond + duration.nanos();
  std::string out;
  if (total < 0) {
    out = "-";
    total = -total;
  }
  if (total == 0) return "0s";

  constexpr Nanos kMinute = 60 * Nanos{kNanosPerSecond};
  constexpr Nanos kHour = 60 * kMinute;
  // Below one unit of the next size, print in the largest unit that keeps the integer part
  // non-zero. Rounding to three decimals may carry into the next unit (999.9996ms -> 1s), so
  // the unit is chosen again from the rounded value, which is then exact in it.
  auto unitFor = [](Nanos nanos) -> int64_t {
    if (nanos < 1'000) return 1;
    if (nanos < 1'000'000) return 1'000;
    if (nanos < kNanosPerSecond) return 1'000'000;
    return kNanosPerSecond;
  };
  auto roundTo = [](Nanos nanos, Nanos step) { return (nanos + step / 2) / step * step; };
  if (total < kMinute) {
    const int64_t unit = unitFor(total);
    total = roundTo(total, unit >= 1000 ? unit / 1000 : 1);
  }
  if (total < kMinute) {
    const int64_t unit = unitFor(total);
    appendScaled(out, static_cast<uint64_t>(total), static_cast<uint64_t>(unit));
    out += unit == 1 ? "ns" : unit == 1'000 ? "us" : unit == 1'000'000 ? "ms" : "s";
    return out;
  }

  // From one minute up, milliseconds are precise enough for anyone reading.
  total = roundTo(total, 1'000'000);
  const Nanos hours = total / kHour;
  const Nanos minutes = total % kHour / kMinute;
  const Nanos seconds_nanos = total % kMinute;
  if (hours > 0) out += std::to_string(static_cast<int64_t>(hours)) + "h";
  if (minutes > 0) out += std::to_string(static_cast<int64_t>(minutes)) + "m";
  if (seconds_nanos > 0) {
    appendScaled(out, static_cast<uint64_t>(seconds_nanos), kNanosPerSecond);
    out += "s";
  }
  return out;
}

}  // namespace wsvisor::service

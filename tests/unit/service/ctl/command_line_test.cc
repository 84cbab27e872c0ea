// Parsing wsvisorctl's command line into the request it sends.
#include "service/ctl/command_line.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "service/ctl/nearest_name.h"

namespace wsvisor::ctl {
namespace {

using ::testing::HasSubstr;
using Kind = CtlCommand::Kind;

CtlCommand parseValid(const std::vector<std::string>& args, const std::string& env = "") {
  std::string error;
  std::optional<CtlCommand> command = parseCommandLine(args, env, error);
  EXPECT_TRUE(command.has_value()) << error;
  return command.value_or(CtlCommand{});
}

std::string parseError(const std::vector<std::string>& args) {
  std::string error;
  EXPECT_FALSE(parseCommandLine(args, "", error).has_value()) << "accepted";
  return error;
}

// The spec that `register a ws://h <flags>` sends.
v1::EndpointSpec registeredSpec(const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"register", "a", "ws://h"};
  args.insert(args.end(), flags.begin(), flags.end());
  return parseValid(args).register_request.spec();
}

v1::EndpointSpec specFromText(const std::string& text) {
  v1::EndpointSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec)) << text;
  return spec;
}

MATCHER_P(EqualsProto, expected, "equals " + expected.ShortDebugString()) {
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, arg)) return true;
  *result_listener << diff;
  return false;
}

TEST(CommandLineTest, RegisterWithOnlyIdAndUrlLeavesEverythingElseUnset) {
  const CtlCommand command = parseValid({"register", "echo-1", "ws://localhost:9000/ws"});
  EXPECT_EQ(command.kind, Kind::kRegister);
  EXPECT_THAT(command.register_request.spec(),
              EqualsProto(specFromText(R"(id: "echo-1" url: "ws://localhost:9000/ws")")));
  EXPECT_FALSE(command.register_request.spec().has_heartbeat());
  EXPECT_FALSE(command.register_request.spec().has_tls());
  EXPECT_FALSE(command.register_request.spec().has_backoff());
}

// Every spec flag once, with a value, as a user would type them (one flag and its value per
// group); `register` and `update` both take them.
std::vector<std::string> everySpecFlag() {
  const std::vector<std::vector<std::string>> groups = {
      {"--mode", "text"},
      {"--interval", "250ms"},
      {"--timeout=1.5s"},
      {"--unhealthy-threshold", "3"},
      {"--healthy-threshold", "2"},
      {"--payload", "ping?"},
      {"--expect", "pong.*"},
      {"--label", "env=prod"},
      {"--label", "tier="},
      {"--header", "Authorization=Bearer a=b"},
      {"--header", "X-Trace=1"},
      {"--subprotocol", "v2.feed"},
      {"--subprotocol", "v1.feed"},
      {"--connect-timeout", "5s"},
      {"--ca-file", "/etc/ca.pem"},
      {"--server-name", "feed.internal"},
      {"--insecure-skip-verify"},
      {"--client-cert", "c.pem"},
      {"--client-key", "k.pem"},
      {"--max-message-bytes", "65536"},
      {"--backoff-initial", "100ms"},
      {"--backoff-multiplier", "2"},
      {"--backoff-jitter", "0.1"},
      {"--backoff-max", "1m"},
      {"--backoff-reset-after", "30s"},
      {"--no-jitter"},
  };
  std::vector<std::string> flags;
  for (const auto& group : groups) flags.insert(flags.end(), group.begin(), group.end());
  return flags;
}

TEST(CommandLineTest, RegisterFillsEveryFieldFromItsFlag) {
  std::vector<std::string> args = {"register", "feed", "wss://feed.example:443/v1"};
  const std::vector<std::string> flags = everySpecFlag();
  args.insert(args.end(), flags.begin(), flags.end());
  const CtlCommand command = parseValid(args);
  EXPECT_THAT(command.register_request.spec(), EqualsProto(specFromText(R"(
      id: "feed"
      url: "wss://feed.example:443/v1"
      labels { key: "env" value: "prod" }
      labels { key: "tier" value: "" }
      headers { name: "Authorization" value: "Bearer a=b" }
      headers { name: "X-Trace" value: "1" }
      subprotocols: "v2.feed"
      subprotocols: "v1.feed"
      heartbeat {
        mode: HEARTBEAT_MODE_TEXT
        interval { nanos: 250000000 }
        timeout { seconds: 1 nanos: 500000000 }
        unhealthy_threshold: 3
        healthy_threshold: 2
        payload: "ping?"
        expect: "pong.*"
      }
      backoff {
        initial { nanos: 100000000 }
        multiplier: 2
        jitter: 0.1
        max { seconds: 60 }
        reset_after { seconds: 30 }
        no_jitter: true
      }
      connect_timeout { seconds: 5 }
      tls {
        ca_file: "/etc/ca.pem"
        server_name: "feed.internal"
        insecure_skip_verify: true
        client_cert_file: "c.pem"
        client_key_file: "k.pem"
      }
      max_message_bytes: 65536
  )")));
}

TEST(CommandLineTest, UpdateBuildsItsSpecFromTheRegisterFlags) {
  std::vector<std::string> update = {"update", "feed", "wss://feed.example:443/v1"};
  std::vector<std::string> register_args = {"register", "feed", "wss://feed.example:443/v1"};
  const std::vector<std::string> flags = everySpecFlag();
  update.insert(update.end(), flags.begin(), flags.end());
  register_args.insert(register_args.end(), flags.begin(), flags.end());

  const CtlCommand command = parseValid(update);
  EXPECT_EQ(command.kind, Kind::kUpdate);
  EXPECT_THAT(command.update_request.spec(),
              EqualsProto(parseValid(register_args).register_request.spec()));
  EXPECT_EQ(command.update_request.expected_generation(), 0u);  // unconditional
  EXPECT_FALSE(command.register_request.has_spec());

  // Only what is given is set, as for register.
  const CtlCommand bare = parseValid({"update", "a", "ws://h", "--interval", "0s"});
  EXPECT_THAT(bare.update_request.spec(),
              EqualsProto(specFromText(R"(id: "a" url: "ws://h" heartbeat { interval {} })")));
}

TEST(CommandLineTest, UpdateReportsBadSpecFlagsAsRegisterDoes) {
  EXPECT_EQ(parseError({"update", "a", "ws://h", "--mode", "pong"}),
            parseError({"register", "a", "ws://h", "--mode", "pong"}));
  EXPECT_EQ(parseError({"update", "a", "ws://h", "--label", "a=1", "--label", "a=2"}),
            "--label: key \"a\" given twice");
  EXPECT_EQ(parseError({"update", "a", "ws://h", "--selector", "a=b"}),
            "unknown flag --selector for update (it is a flag of list and watch)");
  EXPECT_EQ(parseError({"update"}), "update: missing ID and URL");
  EXPECT_EQ(parseError({"update", "a"}), "update: missing URL");
  EXPECT_EQ(parseError({"update", "a", "ws://h", "x"}), "update: unexpected argument \"x\"");
}

TEST(CommandLineTest, ProbeTakesAUrlAndTheRegisterFlags) {
  const CtlCommand bare = parseValid({"probe", "ws://localhost:9000/ws"});
  EXPECT_EQ(bare.kind, Kind::kProbe);
  EXPECT_THAT(bare.probe_request.spec(),
              EqualsProto(specFromText(R"(url: "ws://localhost:9000/ws")")));
  EXPECT_EQ(bare.probe_request.heartbeats(), 0u);  // the server's default
  EXPECT_FALSE(bare.request_timeout_given);

  // The same flags build the same spec as for register, but for the id.
  std::vector<std::string> probe = {"probe", "wss://feed.example:443/v1"};
  std::vector<std::string> register_args = {"register", "feed", "wss://feed.example:443/v1"};
  const std::vector<std::string> flags = everySpecFlag();
  probe.insert(probe.end(), flags.begin(), flags.end());
  register_args.insert(register_args.end(), flags.begin(), flags.end());
  v1::EndpointSpec expected = parseValid(register_args).register_request.spec();
  expected.clear_id();
  const CtlCommand full = parseValid(probe);
  EXPECT_THAT(full.probe_request.spec(), EqualsProto(expected));
  EXPECT_FALSE(full.register_request.has_spec());
}

TEST(CommandLineTest, ProbeHeartbeats) {
  EXPECT_EQ(parseValid({"probe", "ws://h", "--heartbeats", "5"}).probe_request.heartbeats(), 5u);
  EXPECT_EQ(parseValid({"probe", "--heartbeats=100", "ws://h"}).probe_request.heartbeats(), 100u);
  // Out of range is the server's to refuse, as for every number it checks.
  EXPECT_EQ(parseValid({"probe", "ws://h", "--heartbeats", "0"}).probe_request.heartbeats(), 0u);
  EXPECT_EQ(parseError({"probe", "ws://h", "--heartbeats", "three"}),
            "--heartbeats: want a whole number, got \"three\"");
  EXPECT_EQ(parseError({"probe", "ws://h", "--heartbeats", "4294967296"}),
            "--heartbeats: 4294967296 is too large (at most 4294967295)");
  EXPECT_EQ(parseError({"probe", "ws://h", "--heartbeats"}), "--heartbeats: missing value");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--heartbeats", "3"}),
            "unknown flag --heartbeats for register (it is a flag of probe)");
}

TEST(CommandLineTest, ProbeReportsBadArgumentsAsRegisterDoes) {
  EXPECT_EQ(parseError({"probe"}), "probe: missing URL");
  EXPECT_EQ(parseError({"probe", "ws://h", "extra"}), "probe: unexpected argument \"extra\"");
  EXPECT_EQ(parseError({"probe", "ws://h", "--mode", "pong"}),
            parseError({"register", "a", "ws://h", "--mode", "pong"}));
  EXPECT_EQ(parseError({"probe", "ws://h", "--interval", "10"}),
            parseError({"register", "a", "ws://h", "--interval", "10"}));
  EXPECT_EQ(parseError({"probe", "ws://h", "--selector", "a=b"}),
            "unknown flag --selector for probe (it is a flag of list and watch)");
}

TEST(CommandLineTest, ExpectedGeneration) {
  EXPECT_EQ(parseValid({"update", "a", "ws://h", "--expected-generation", "7"})
                .update_request.expected_generation(),
            7u);
  EXPECT_EQ(parseValid({"update", "a", "ws://h", "--expected-generation=18446744073709551615"})
                .update_request.expected_generation(),
            18446744073709551615u);
  EXPECT_EQ(parseError({"update", "a", "ws://h", "--expected-generation", "seven"}),
            "--expected-generation: want a whole number, got \"seven\"");
  EXPECT_EQ(parseError({"update", "a", "ws://h", "--expected-generation=-1"}),
            "--expected-generation: want a whole number, got \"-1\"");
  EXPECT_EQ(parseError({"update", "a", "ws://h", "--expected-generation", "18446744073709551616"}),
            "--expected-generation: 18446744073709551616 is too large (at most "
            "18446744073709551615)");
  EXPECT_EQ(parseError({"update", "a", "ws://h", "--expected-generation"}),
            "--expected-generation: missing value");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--expected-generation", "1"}),
            "unknown flag --expected-generation for register (it is a flag of update)");
}

TEST(CommandLineTest, AZeroDurationGivenOnTheCommandLineIsSentAsSet) {
  // The server, not wsvisorctl, rejects it with INVALID_ARGUMENT naming the field.
  const v1::EndpointSpec spec = registeredSpec({"--interval", "0s", "--connect-timeout", "0"});
  ASSERT_TRUE(spec.has_heartbeat());
  ASSERT_TRUE(spec.heartbeat().has_interval());
  EXPECT_EQ(spec.heartbeat().interval().seconds(), 0);
  EXPECT_EQ(spec.heartbeat().interval().nanos(), 0);
  EXPECT_FALSE(spec.heartbeat().has_timeout());
  EXPECT_TRUE(spec.has_connect_timeout());
}

TEST(CommandLineTest, ModesAreCaseInsensitiveWords) {
  EXPECT_EQ(registeredSpec({"--mode", "ping"}).heartbeat().mode(), v1::HEARTBEAT_MODE_PING);
  EXPECT_EQ(registeredSpec({"--mode=PASSIVE"}).heartbeat().mode(), v1::HEARTBEAT_MODE_PASSIVE);
}

TEST(CommandLineTest, HealthSemanticsFlags) {
  const v1::EndpointSpec spec =
      registeredSpec({"--unhealthy-interval", "250ms", "--flap-threshold", "3", "--flap-window",
                      "30s", "--flap-quiet-period", "10s"});
  EXPECT_EQ(spec.heartbeat().unhealthy_interval().nanos(), 250'000'000);
  EXPECT_EQ(spec.flapping().threshold(), 3u);
  EXPECT_EQ(spec.flapping().window().seconds(), 30);
  EXPECT_EQ(spec.flapping().quiet_period().seconds(), 10);
  EXPECT_FALSE(spec.flapping().disabled());
  EXPECT_TRUE(registeredSpec({"--no-flap-detection"}).flapping().disabled());
  EXPECT_EQ(registeredSpec({"--mode", "none"}).heartbeat().mode(), v1::HEARTBEAT_MODE_NONE);
  EXPECT_FALSE(registeredSpec({}).has_flapping());  // unset: every default
}

TEST(CommandLineTest, UnknownModeNamesTheFlag) {
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--mode", "pong"}),
            "--mode: unknown heartbeat mode \"pong\" (want ping, text, passive or none)");
}

TEST(CommandLineTest, BadDurationNamesTheFlag) {
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--interval", "10"}),
            "--interval: invalid duration \"10\": missing unit after \"10\" (use ns, us, ms, s, "
            "m or h)");
  EXPECT_THAT(parseError({"register", "a", "ws://h", "--backoff-max", "soon"}),
              HasSubstr("--backoff-max: invalid duration \"soon\""));
}

TEST(CommandLineTest, LabelsAndHeadersMustBeKeyValue) {
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--label", "prod"}),
            "--label: want key=value, got \"prod\"");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--label", "=prod"}),
            "--label: want key=value, got \"=prod\"");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--header", "Authorization: x"}),
            "--header: want key=value, got \"Authorization: x\"");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--label", "a=1", "--label", "a=2"}),
            "--label: key \"a\" given twice");
}

TEST(CommandLineTest, NumbersMustBeWholeAndInRange) {
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--unhealthy-threshold", "two"}),
            "--unhealthy-threshold: want a whole number, got \"two\"");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--healthy-threshold", "-1"}),
            "--healthy-threshold: want a whole number, got \"-1\"");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--healthy-threshold", "4294967296"}),
            "--healthy-threshold: 4294967296 is too large (at most 4294967295)");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--max-message-bytes", "1MiB"}),
            "--max-message-bytes: want a whole number, got \"1MiB\"");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--backoff-jitter", "nan"}),
            "--backoff-jitter: want a number, got \"nan\"");
}

TEST(CommandLineTest, SwitchesTakeNoValueButAcceptAnExplicitOne) {
  EXPECT_TRUE(registeredSpec({"--insecure-skip-verify"}).tls().insecure_skip_verify());
  const v1::EndpointSpec off = registeredSpec({"--insecure-skip-verify=false"});
  EXPECT_TRUE(off.has_tls());  // given, so set, even to false
  EXPECT_FALSE(off.tls().insecure_skip_verify());
  EXPECT_EQ(parseError({"register", "a", "wss://h", "--no-jitter=yes"}),
            "--no-jitter: want true or false, got \"yes\"");
}

TEST(CommandLineTest, FlagsMayComeAnywhereAndDashDashEndsThem) {
  const CtlCommand command = parseValid(
      {"--server", "h:1", "register", "--interval", "1s", "a", "-o", "json", "--", "--weird"});
  EXPECT_EQ(command.server, "h:1");
  EXPECT_EQ(command.output, OutputFormat::kJson);
  EXPECT_EQ(command.register_request.spec().id(), "a");
  EXPECT_EQ(command.register_request.spec().url(), "--weird");
  EXPECT_EQ(command.register_request.spec().heartbeat().interval().seconds(), 1);
}

TEST(CommandLineTest, AFlagValueMayStartWithADash) {
  EXPECT_EQ(registeredSpec({"--payload", "-x"}).heartbeat().payload(), "-x");
}

TEST(CommandLineTest, PositionalArgumentsAreCounted) {
  EXPECT_EQ(parseError({"register"}), "register: missing ID and URL");
  EXPECT_EQ(parseError({"register", "a"}), "register: missing URL");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "extra"}),
            "register: unexpected argument \"extra\"");
  EXPECT_EQ(parseError({"get"}), "get: missing ID");
  EXPECT_EQ(parseError({"unregister", "a", "b"}), "unregister: unexpected argument \"b\"");
  EXPECT_EQ(parseError({"list", "a"}), "list: unexpected argument \"a\" (takes none)");
}

TEST(CommandLineTest, UnregisterAndGetTakeTheId) {
  EXPECT_EQ(parseValid({"unregister", "a"}).unregister_request.id(), "a");
  const CtlCommand get = parseValid({"get", "b", "--output=json"});
  EXPECT_EQ(get.kind, Kind::kGet);
  EXPECT_EQ(get.get_request.id(), "b");
  EXPECT_EQ(get.output, OutputFormat::kJson);
}

TEST(CommandLineTest, ListAndWatchTakeASelector) {
  const CtlCommand list = parseValid({"list", "--selector", "env=prod,tier!=db"});
  EXPECT_EQ(list.kind, Kind::kList);
  EXPECT_EQ(list.list_request.label_selector(), "env=prod,tier!=db");
  EXPECT_TRUE(list.list_request.page_token().empty());

  const CtlCommand watch = parseValid({"watch", "a", "b", "-l", "env=prod", "-ojson"});
  EXPECT_EQ(watch.kind, Kind::kWatch);
  EXPECT_THAT(watch.watch_request.ids(), ::testing::ElementsAre("a", "b"));
  EXPECT_EQ(watch.watch_request.label_selector(), "env=prod");
  EXPECT_EQ(watch.output, OutputFormat::kJson);

  EXPECT_TRUE(parseValid({"watch"}).watch_request.ids().empty());
}

TEST(CommandLineTest, WatchSinceResumesAfterARevisionAsWatchLinesPrintIt) {
  EXPECT_EQ(parseValid({"watch"}).watch_request.since_revision(), 0u);
  EXPECT_EQ(parseValid({"watch", "--since", "1764221647123456"}).watch_request.since_revision(),
            1764221647123456u);
  // Copied from a watch line ("#42"), quoted so that the shell keeps the '#'.
  EXPECT_EQ(parseValid({"watch", "--since=#42", "a"}).watch_request.since_revision(), 42u);
  EXPECT_EQ(parseError({"watch", "--since", "x"}), "--since: want a whole number, got \"x\"");
  EXPECT_EQ(parseError({"watch", "--since", "#"}), "--since: want a whole number, got \"\"");
  EXPECT_EQ(parseError({"list", "--since", "1"}),
            "unknown flag --since for list (it is a flag of watch)");
}

TEST(CommandLineTest, HistoryTakesTheId) {
  const CtlCommand history = parseValid({"history", "a", "-o", "json"});
  EXPECT_EQ(history.kind, Kind::kHistory);
  EXPECT_EQ(history.history_request.id(), "a");
  EXPECT_EQ(history.output, OutputFormat::kJson);
  EXPECT_EQ(parseError({"history"}), "history: missing ID");
  EXPECT_EQ(parseError({"history", "a", "b"}), "history: unexpected argument \"b\"");
}

TEST(CommandLineTest, FlagsOfOtherCommandsAreUnknownAndSayWhoseTheyAre) {
  EXPECT_EQ(parseError({"get", "a", "--interval", "1s"}),
            "unknown flag --interval for get (it is a flag of register, update and probe)");
  EXPECT_EQ(parseError({"probe", "ws://h", "--selector", "a=b"}),
            "unknown flag --selector for probe (it is a flag of list and watch)");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--since", "4"}),
            "unknown flag --since for register (it is a flag of watch)");
  // Before the command only the global flags are known.
  EXPECT_EQ(parseError({"--selector", "a=b", "list"}),
            "unknown flag --selector (it is a flag of list and watch); give it after the command");
  EXPECT_EQ(parseError({"list", "-x"}), "unknown flag -x for list");
}

TEST(CommandLineTest, AMistypedFlagGetsTheNearestOne) {
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--intervall", "10s"}),
            "unknown flag --intervall for register; did you mean --interval?");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--intervall=10s"}),
            "unknown flag --intervall for register; did you mean --interval?");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--lable", "team=red"}),
            "unknown flag --lable for register; did you mean --label?");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--unhealty-treshold", "3"}),
            "unknown flag --unhealty-treshold for register; did you mean --unhealthy-threshold?");
  EXPECT_EQ(parseError({"register", "a", "ws://h", "-interval", "10s"}),
            "unknown flag -interval for register; did you mean --interval?");
  EXPECT_EQ(parseError({"update", "a", "ws://h", "--expected-generaton", "3"}),
            "unknown flag --expected-generaton for update; did you mean --expected-generation?");
  EXPECT_EQ(parseError({"probe", "ws://h", "--heartbeat", "3"}),
            "unknown flag --heartbeat for probe; did you mean --heartbeats?");
  EXPECT_EQ(parseError({"watch", "--snice", "4"}),
            "unknown flag --snice for watch; did you mean --since?");
  // Global flags are suggested for every command, and before it.
  EXPECT_EQ(parseError({"list", "--sever", "h:1"}),
            "unknown flag --sever for list; did you mean --server?");
  EXPECT_EQ(parseError({"--outptu", "json", "list"}),
            "unknown flag --outptu; did you mean --output?");
  EXPECT_EQ(parseError({"list", "--bogus"}), "unknown flag --bogus for list");
}

TEST(CommandLineTest, NearestName) {
  const std::vector<std::string_view> known = {"--interval", "--timeout", "--label", "-o"};
  EXPECT_EQ(nearestName("--intervall", known), "--interval");
  EXPECT_EQ(nearestName("--INTERVAL", known), "--interval");
  EXPECT_EQ(nearestName("interval", known), "--interval");
  EXPECT_EQ(nearestName("--timoeut", known), "--timeout");  // a swap is one edit
  EXPECT_EQ(nearestName("--labels", known), "--label");
  EXPECT_EQ(nearestName("--lbl", known), std::nullopt);  // 2 edits, a third of "lbl" is 1
  EXPECT_EQ(nearestName("--xyz", known), std::nullopt);
  EXPECT_EQ(nearestName("-x", known), std::nullopt);  // "o" for "x" keeps nothing of it
  EXPECT_EQ(nearestName("--", known), std::nullopt);
  EXPECT_EQ(nearestName("--interval", {}), std::nullopt);
}

TEST(CommandLineTest, MissingFlagValue) {
  EXPECT_EQ(parseError({"register", "a", "ws://h", "--interval"}), "--interval: missing value");
}

TEST(CommandLineTest, OutputFormats) {
  EXPECT_EQ(parseValid({"list"}).output, OutputFormat::kTable);
  EXPECT_EQ(parseValid({"list", "-o", "table"}).output, OutputFormat::kTable);
  EXPECT_EQ(parseValid({"list", "-o=json"}).output, OutputFormat::kJson);
  EXPECT_EQ(parseError({"list", "-o", "yaml"}),
            "--output: unknown format \"yaml\" (want table or json)");
}

TEST(CommandLineTest, ServerFlagBeatsEnvironmentBeatsDefault) {
  EXPECT_EQ(parseValid({"list"}).server, "127.0.0.1:50051");
  EXPECT_EQ(parseValid({"list"}).server_source, ServerSource::kDefault);
  EXPECT_EQ(parseValid({"list"}, "env:2").server, "env:2");
  EXPECT_EQ(parseValid({"list"}, "env:2").server_source, ServerSource::kEnvironment);
  EXPECT_EQ(parseValid({"list", "--server", "flag:3"}, "env:2").server, "flag:3");
  EXPECT_EQ(parseValid({"list", "--server", "flag:3"}, "env:2").server_source, ServerSource::kFlag);
  EXPECT_EQ(parseError({"list", "--server="}), "--server: must not be empty (want host:port)");
}

TEST(CommandLineTest, CommandLineAsRepeatsTheArgumentsUnderAnotherCommandForAShell) {
  const CtlCommand command =
      parseValid({"--server", "h:1", "register", "prices", "ws://h/feed?a=1&b=2", "--label",
                  "team=red", "--payload", "register", "--expect", "it's", "-o", "json"});
  // Only the command word changes, not a value that spells a command.
  EXPECT_EQ(commandLineAs(command, "update"),
            "wsvisorctl --server h:1 update prices 'ws://h/feed?a=1&b=2' --label team=red "
            "--payload register --expect 'it'\\''s' -o json");
  EXPECT_EQ(commandLineAs(parseValid({"register", "a", "ws://h/", "--payload="}), "update"),
            "wsvisorctl update a ws://h/ --payload=");
  EXPECT_EQ(commandLineAs(parseValid({"register", "--", "a", "ws://h/ x"}), "update"),
            "wsvisorctl update -- a 'ws://h/ x'");
}

TEST(CommandLineTest, CommandLineAsRedactsTheValuesOfSecretHeaders) {
  const CtlCommand command =
      parseValid({"register", "a", "ws://h/", "--header", "Authorization=Bearer abc",
                  "--header=x-api-key=k1", "--header", "X-Trace=on", "--header", "Cookie=a=b"});
  // The request keeps the values: only what is shown is redacted.
  EXPECT_EQ(command.register_request.spec().headers(0).value(), "Bearer abc");
  EXPECT_EQ(commandLineAs(command, "update"),
            "wsvisorctl update a ws://h/ --header 'Authorization=<redacted>' "
            "'--header=x-api-key=<redacted>' --header X-Trace=on --header 'Cookie=<redacted>'");
}

TEST(CommandLineTest, SecretHeaderNamesAreThoseTheApiDocuments) {
  for (const char* name :
       {"Authorization", "proxy-authorization", "COOKIE", "X-Api-Key", "x-auth-token"}) {
    EXPECT_TRUE(isSecretHeaderName(name)) << name;
  }
  for (const char* name : {"", "X-Trace", "Authorization2", "Set-Cookie"}) {
    EXPECT_FALSE(isSecretHeaderName(name)) << name;
  }
}

TEST(CommandLineTest, RequestTimeout) {
  EXPECT_EQ(parseValid({"list"}).request_timeout, std::chrono::seconds(10));
  EXPECT_FALSE(parseValid({"list"}).request_timeout_given);
  EXPECT_EQ(parseValid({"list", "--request-timeout", "2s"}).request_timeout,
            std::chrono::seconds(2));
  EXPECT_TRUE(parseValid({"probe", "ws://h", "--request-timeout", "2s"}).request_timeout_given);
  EXPECT_EQ(parseError({"list", "--request-timeout", "0s"}),
            "--request-timeout: must be greater than 0");
}

TEST(CommandLineTest, HelpWinsOverEverything) {
  EXPECT_EQ(parseValid({"help"}).kind, Kind::kHelp);
  EXPECT_EQ(parseValid({"--help"}).kind, Kind::kHelp);
  EXPECT_EQ(parseValid({"register", "--bogus", "-h"}).kind, Kind::kHelp);
  EXPECT_EQ(parseValid({"get", "--", "--help"}).get_request.id(), "--help");
}

TEST(CommandLineTest, UnknownOrMissingCommand) {
  EXPECT_EQ(parseError({"delete", "a"}),
            "unknown command \"delete\" (want register, update, unregister, get, list, watch, "
            "history, probe or help)");
  EXPECT_EQ(parseError({"regster", "a", "ws://h"}),
            "unknown command \"regster\" (want register, update, unregister, get, list, watch, "
            "history, probe or help); did you mean register?");
  EXPECT_EQ(parseError({}),
            "missing command (want register, update, unregister, get, list, watch, history, "
            "probe or help)");
}

TEST(CommandLineTest, UsageMentionsEveryCommandAndRegisterFlag) {
  const std::string usage = usageText();
  for (const char* word : {"register ID URL",
                           "update ID URL",
                           "--expected-generation",
                           "unregister ID",
                           "get ID",
                           "list",
                           "watch",
                           "--since REV",
                           "history ID",
                           "probe URL",
                           "--heartbeats",
                           "--mode",
                           "--interval",
                           "--timeout",
                           "--unhealthy-threshold",
                           "--healthy-threshold",
                           "--payload",
                           "--expect",
                           "--label",
                           "--header",
                           "--subprotocol",
                           "--connect-timeout",
                           "--ca-file",
                           "--server-name",
                           "--insecure-skip-verify",
                           "--max-message-bytes",
                           "--selector",
                           "--server",
                           "-o",
                           "WSVISOR_SERVER"}) {
    EXPECT_THAT(usage, HasSubstr(word));
  }
}

}  // namespace
}  // namespace wsvisor::ctl

namespace wsvisor::ctl {
namespace {

TEST(CommandLineTest, PlaintextWithoutTokenByDefault) {
  const CtlCommand command = parseValid({"list"});
  EXPECT_FALSE(command.connection.tls);
  EXPECT_TRUE(command.connection.token_file.empty());
}

TEST(CommandLineTest, AnyTlsFlagTurnsTlsOn) {
  EXPECT_TRUE(parseValid({"--tls", "list"}).connection.tls);
  EXPECT_TRUE(parseValid({"list", "--tls-ca", "ca.pem"}).connection.tls);
  EXPECT_TRUE(parseValid({"list", "--tls-server-name", "wsvisor.internal"}).connection.tls);
  const CtlCommand mutual =
      parseValid({"--tls-cert", "c.pem", "--tls-key", "k.pem", "get", "a", "--tls-ca=ca.pem"});
  EXPECT_TRUE(mutual.connection.tls);
  EXPECT_EQ(mutual.connection.tls_cert_file, "c.pem");
  EXPECT_EQ(mutual.connection.tls_key_file, "k.pem");
  EXPECT_EQ(mutual.connection.tls_ca_file, "ca.pem");
}

TEST(CommandLineTest, ClientCertificateAndKeyGoTogether) {
  EXPECT_EQ(parseError({"list", "--tls-cert", "c.pem"}),
            "--tls-cert and --tls-key go together: give both or neither");
  EXPECT_EQ(parseError({"list", "--tls-ca="}), "--tls-ca: must not be empty");
}

TEST(CommandLineTest, TokenFileFlagWinsOverTheEnvironment) {
  std::string error;
  const auto from_environment = parseCommandLine({"list"}, "", error, "/run/token");
  ASSERT_TRUE(from_environment) << error;
  EXPECT_EQ(from_environment->connection.token_file, "/run/token");
  const auto from_flag =
      parseCommandLine({"list", "--token-file", "/etc/token"}, "", error, "/run/token");
  ASSERT_TRUE(from_flag) << error;
  EXPECT_EQ(from_flag->connection.token_file, "/etc/token");
  EXPECT_TRUE(from_flag->authorization.empty());  // read when the channel is opened
}

}  // namespace
}  // namespace wsvisor::ctl

// wsvisorctl: the command-line client of wsvisor's gRPC API. See usageText() for the commands.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "service/ctl/command_line.h"
#include "service/ctl/command_runner.h"
#include "service/ctl/connection.h"
#include "service/ctl/stream_interrupter.h"
#include "wsvisor/v1/supervisor.grpc.pb.h"

int main(int argc, char** argv) {
  using wsvisor::ctl::CtlCommand;

  const std::vector<std::string> args(argv + 1, argv + argc);
  const char* server_from_environment =
      std::getenv(std::string(wsvisor::ctl::kServerEnvironmentVariable).c_str());
  const char* token_file_from_environment =
      std::getenv(std::string(wsvisor::ctl::kTokenFileEnvironmentVariable).c_str());
  std::string error;
  std::optional<CtlCommand> command = wsvisor::ctl::parseCommandLine(
      args, server_from_environment != nullptr ? server_from_environment : "", error,
      token_file_from_environment != nullptr ? token_file_from_environment : "");
  if (!command) {
    std::cerr << "wsvisorctl: " << error << "\nRun 'wsvisorctl --help' for usage.\n";
    return wsvisor::ctl::kExitUsage;
  }
  if (command->kind == CtlCommand::Kind::kHelp) {
    std::cout << wsvisor::ctl::usageText();
    return wsvisor::ctl::kExitSuccess;
  }

  // Before the channel exists: gRPC's threads must inherit the blocked signal mask (see
  // StreamInterrupter). Other commands are short calls that Ctrl-C may simply kill.
  std::optional<wsvisor::ctl::StreamInterrupter> interrupter;
  if (command->kind == CtlCommand::Kind::kWatch) interrupter.emplace();

  const std::shared_ptr<grpc::Channel> channel = wsvisor::ctl::openChannel(*command, error);
  if (!channel) {
    std::cerr << "wsvisorctl: " << error << '\n';
    return wsvisor::ctl::kExitUsage;
  }
  const std::unique_ptr<wsvisor::v1::Supervisor::Stub> stub =
      wsvisor::v1::Supervisor::NewStub(channel);
  const int status = wsvisor::ctl::runCommand(*command, *stub, std::cout, std::cerr,
                                              interrupter ? &*interrupter : nullptr, channel.get());
  std::cout.flush();
  return status;
}

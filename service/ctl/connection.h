#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "service/ctl/command_line.h"

namespace wsvisor::ctl {

// Reads the files `command.connection` names (CA, client certificate and key, token) and opens
// the channel to `command.server`; fills `command.authorization` when there is a token. Returns
// nullptr with a one-line `error` naming the flag and file when a file cannot be used.
std::shared_ptr<grpc::Channel> openChannel(CtlCommand& command, std::string& error);

// The bearer token in `text`: its first line without surrounding white space. Empty when there
// is none.
std::string tokenFromFileText(const std::string& text);

}  // namespace wsvisor::ctl

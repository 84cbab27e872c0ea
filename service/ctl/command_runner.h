#pragma once

#include <ostream>

#include "service/ctl/command_line.h"
#include "service/ctl/stream_interrupter.h"
#include "wsvisor/v1/supervisor.grpc.pb.h"

namespace wsvisor::ctl {

// wsvisorctl's exit statuses.
inline constexpr int kExitSuccess = 0;
inline constexpr int kExitCallFailed = 1;   // an RPC failed, or its answer could not be printed
inline constexpr int kExitUsage = 2;        // the command line is wrong; nothing was sent
inline constexpr int kExitProbeFailed = 3;  // `probe` ran and the upstream failed it

// Sends the request(s) of `command` (any kind but kHelp) through `stub` and prints the results
// to `out` in `command.output` format. A failed call prints "wsvisorctl: CODE: message" to
// `err` and returns kExitCallFailed; otherwise returns kExitSuccess. When the server could not
// be reached (`channel`, when given, is not connected), a second line says which address was
// tried, where it came from, and how to give another (--server, $WSVISOR_SERVER). When
// `register` meets ALREADY_EXISTS, two more lines say that a flag left out asks for its default
// and give the `wsvisorctl update` command that would apply the spec (see commandLineAs()).
//
// `probe` prints its report (see formatProbeReport()) and returns kExitProbeFailed when the
// probe ran and failed; the call itself has no deadline unless --request-timeout was given.
//
// `list` follows next_page_token until the last page and prints nothing unless every page
// arrived. `watch` prints and flushes each event as it arrives (as a table, see WatchTable: the
// snapshot's rows when its end marker arrives), and returns when the server ends the stream or
// `interrupter` (may be null) reports an interruption, which is a success.
int runCommand(const CtlCommand& command, v1::Supervisor::StubInterface& stub, std::ostream& out,
               std::ostream& err, StreamInterrupter* interrupter,
               grpc::ChannelInterface* channel = nullptr);

}  // namespace wsvisor::ctl

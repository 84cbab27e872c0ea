#include "service/ctl/command_runner.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "service/ctl/output_format.h"

namespace wsvisor::ctl {

namespace {

constexpr char kErrorPrefix[] = "wsvisorctl: ";

void addCredentials(grpc::ClientContext& context, const CtlCommand& command) {
  if (!command.authorization.empty()) context.AddMetadata("authorization", command.authorization);
}

// Every unary call: the bearer token and the deadline.
void setDeadline(grpc::ClientContext& context, const CtlCommand& command) {
  addCredentials(context, command);
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(command.request_timeout));
}

// Whether the call failed because the channel never reached a server (nothing listens, a wrong
// address, DNS, TLS), as opposed to a server that answered with an error. UNAVAILABLE is both
// what gRPC reports for a connection it could not make and what wsvisor answers while it shuts
// down; the channel's state tells them apart.
bool serverUnreachable(const grpc::Status& status, grpc::ChannelInterface* channel) {
  if (channel == nullptr) return false;
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
      status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
    return false;
  }
  const grpc_connectivity_state state = channel->GetState(false);
  return state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_CONNECTING;
}

// Which address was tried, where it came from, and how to give another.
void explainUnreachable(const CtlCommand& command, std::ostream& err) {
  err << kErrorPrefix;
  switch (command.server_source) {
    case ServerSource::kDefault:
      err << "is wsvisor running? " << command.server
          << " is the default address; give another with --server HOST:PORT or $"
          << kServerEnvironmentVariable;
      break;
    case ServerSource::kEnvironment:
      err << "is wsvisor running there? The address comes from $" << kServerEnvironmentVariable
          << "; --server HOST:PORT overrides it";
      break;
    case ServerSource::kFlag:
      err << "is wsvisor running there? Check the address given with --server (without it, "
             "wsvisorctl uses $"
          << kServerEnvironmentVariable << ", else " << kDefaultServer << ")";
      break;
  }
  // The other usual cause: a plaintext client and a TLS server, or the other way round.
  if (command.connection.tls) {
    err << "; if wsvisor serves plaintext, leave out the --tls flags";
  } else {
    err << "; if wsvisor serves TLS, add --tls or --tls-ca FILE";
  }
  err << '\n';
}

// Prints "wsvisorctl: CODE: message" and, where the cause is on this side, how to fix it.
int callFailed(const CtlCommand& command, const grpc::Status& status, std::ostream& err,
               grpc::ChannelInterface* channel) {
  if (serverUnreachable(status, channel)) {
    err << kErrorPrefix << statusCodeName(status.error_code()) << ": cannot reach wsvisor at "
        << command.server << ": " << status.error_message() << '\n';
    explainUnreachable(command, err);
    return kExitCallFailed;
  }
  err << kErrorPrefix << describeStatus(status) << '\n';
  return kExitCallFailed;
}

// Prints `message` as one JSON line; false (after saying why on `err`) if it cannot.
bool printJsonLine(const google::protobuf::Message& message, std::ostream& out, std::ostream& err) {
  std::string error;
  const std::optional<std::string> json = toJsonLine(message, error);
  if (!json) {
    err << kErrorPrefix << error << '\n';
    return false;
  }
  out << *json << '\n';
  return true;
}

// After ALREADY_EXISTS for `register`, whose message names the fields that differ: why a
// repeated register asks for another spec, and the command that would apply this one.
void suggestUpdate(const CtlCommand& command, std::ostream& err) {
  err << kErrorPrefix
      << "each flag left out of register asks for its default, not for the stored value; to "
         "keep the stored spec, nothing needs doing\n";
  err << kErrorPrefix
      << "to replace the stored spec with the one asked for: " << commandLineAs(command, "update");
  const auto& headers = command.register_request.spec().headers();
  if (std::any_of(headers.begin(), headers.end(),
                  [](const v1::Header& h) { return isSecretHeaderName(h.name()); })) {
    err << " (put the header's value in place of <redacted>: wsvisorctl prints no secret)";
  }
  err << '\n';
}

int registerEndpoint(const CtlCommand& command, v1::Supervisor::StubInterface& stub,
                     std::ostream& out, std::ostream& err, grpc::ChannelInterface* channel) {
  grpc::ClientContext context;
  setDeadline(context, command);
  v1::RegisterEndpointResponse response;
  const grpc::Status status = stub.RegisterEndpoint(&context, command.register_request, &response);
  if (!status.ok()) {
    const int exit_status = callFailed(command, status, err, channel);
    if (status.error_code() == grpc::StatusCode::ALREADY_EXISTS) suggestUpdate(command, err);
    return exit_status;
  }
  if (command.output == OutputFormat::kJson) {
    return printJsonLine(response, out, err) ? kExitSuccess : kExitCallFailed;
  }
  const std::string& id = command.register_request.spec().id();
  if (response.created()) {
    out << "registered " << id << '\n';
  } else {
    out << "already registered " << id << " (identical spec)\n";
  }
  return kExitSuccess;
}

int updateEndpoint(const CtlCommand& command, v1::Supervisor::StubInterface& stub,
                   std::ostream& out, std::ostream& err, grpc::ChannelInterface* channel) {
  grpc::ClientContext context;
  setDeadline(context, command);
  v1::UpdateEndpointResponse response;
  const grpc::Status status = stub.UpdateEndpoint(&context, command.update_request, &response);
  if (!status.ok()) return callFailed(command, status, err, channel);
  if (command.output == OutputFormat::kJson) {
    return printJsonLine(response, out, err) ? kExitSuccess : kExitCallFailed;
  }
  // The new generation is what the next `update --expected-generation` must pass.
  out << "updated " << command.update_request.spec().id() << " (generation "
      << response.endpoint().generation() << ", "
      << (response.reconnected() ? "reconnected" : "applied to the live connection") << ")\n";
  return kExitSuccess;
}

int unregisterEndpoint(const CtlCommand& command, v1::Supervisor::StubInterface& stub,
                       std::ostream& out, std::ostream& err, grpc::ChannelInterface* channel) {
  grpc::ClientContext context;
  setDeadline(context, command);
  v1::UnregisterEndpointResponse response;
  const grpc::Status status =
      stub.UnregisterEndpoint(&context, command.unregister_request, &response);
  if (!status.ok()) return callFailed(command, status, err, channel);
  if (command.output == OutputFormat::kJson) {
    return printJsonLine(response, out, err) ? kExitSuccess : kExitCallFailed;
  }
  out << "unregistered " << command.unregister_request.id() << '\n';
  return kExitSuccess;
}

int getEndpoint(const CtlCommand& command, v1::Supervisor::StubInterface& stub, std::ostream& out,
                std::ostream& err, grpc::ChannelInterface* channel) {
  grpc::ClientContext context;
  setDeadline(context, command);
  v1::GetEndpointResponse response;
  const grpc::Status status = stub.GetEndpoint(&context, command.get_request, &response);
  if (!status.ok()) return callFailed(command, status, err, channel);
  if (command.output == OutputFormat::kJson) {
    // The Endpoint itself, like each line of `list`, so that scripts read both the same way.
    return printJsonLine(response.endpoint(), out, err) ? kExitSuccess : kExitCallFailed;
  }
  printEndpointTable({response.endpoint()}, EndpointTable::kGet, std::chrono::system_clock::now(),
                     out);
  return kExitSuccess;
}

int listEndpoints(const CtlCommand& command, v1::Supervisor::StubInterface& stub, std::ostream& out,
                  std::ostream& err, grpc::ChannelInterface* channel) {
  // All pages first, then the output: a table needs every row to size its columns, and a
  // failure half-way should not leave a list that looks complete.
  std::vector<v1::Endpoint> endpoints;
  v1::ListEndpointsRequest request = command.list_request;
  for (;;) {
    grpc::ClientContext context;
    setDeadline(context, command);
    v1::ListEndpointsResponse response;
    const grpc::Status status = stub.ListEndpoints(&context, request, &response);
    if (!status.ok()) return callFailed(command, status, err, channel);
    for (v1::Endpoint& endpoint : *response.mutable_endpoints()) {
      endpoints.push_back(std::move(endpoint));
    }
    if (response.next_page_token().empty()) break;
    // A server that hands back the token it was given would keep us here forever.
    if (response.next_page_token() == request.page_token()) {
      err << kErrorPrefix << "INTERNAL: the server returned page token \""
          << response.next_page_token() << "\" twice in a row\n";
      return kExitCallFailed;
    }
    request.set_page_token(response.next_page_token());
  }

  if (command.output == OutputFormat::kJson) {
    for (const v1::Endpoint& endpoint : endpoints) {
      if (!printJsonLine(endpoint, out, err)) return kExitCallFailed;
    }
  } else {
    printEndpointTable(endpoints, EndpointTable::kList, std::chrono::system_clock::now(), out);
  }
  return kExitSuccess;
}

int getHistory(const CtlCommand& command, v1::Supervisor::StubInterface& stub, std::ostream& out,
               std::ostream& err, grpc::ChannelInterface* channel) {
  grpc::ClientContext context;
  setDeadline(context, command);
  v1::GetEndpointHistoryResponse response;
  const grpc::Status status = stub.GetEndpointHistory(&context, command.history_request, &response);
  if (!status.ok()) return callFailed(command, status, err, channel);
  if (command.output == OutputFormat::kJson) {
    return printJsonLine(response, out, err) ? kExitSuccess : kExitCallFailed;
  }
  printHistoryTable(response, out);
  return kExitSuccess;
}

int probeEndpoint(const CtlCommand& command, v1::Supervisor::StubInterface& stub, std::ostream& out,
                  std::ostream& err, grpc::ChannelInterface* channel) {
  grpc::ClientContext context;
  // The server ends a probe within its own time limit; a deadline only if one was asked for.
  if (command.request_timeout_given) {
    setDeadline(context, command);
  } else {
    addCredentials(context, command);
  }
  v1::ProbeEndpointResponse response;
  const grpc::Status status = stub.ProbeEndpoint(&context, command.probe_request, &response);
  if (!status.ok()) return callFailed(command, status, err, channel);
  if (command.output == OutputFormat::kJson) {
    if (!printJsonLine(response, out, err)) return kExitCallFailed;
  } else {
    out << formatProbeReport(response, command.probe_request.spec().heartbeat().mode());
  }
  return response.success() ? kExitSuccess : kExitProbeFailed;
}

// Detaches the watch call from the interrupter on every way out, before the call's context
// is destroyed.
class InterrupterAttachment {
 public:
  InterrupterAttachment(StreamInterrupter* interrupter, grpc::ClientContext* context)
      : interrupter_(interrupter) {
    if (interrupter_ != nullptr) interrupter_->attach(context);
  }
  ~InterrupterAttachment() {
    if (interrupter_ != nullptr) interrupter_->detach();
  }
  InterrupterAttachment(const InterrupterAttachment&) = delete;
  InterrupterAttachment& operator=(const InterrupterAttachment&) = delete;

 private:
  StreamInterrupter* interrupter_;
};

int watchHealth(const CtlCommand& command, v1::Supervisor::StubInterface& stub, std::ostream& out,
                std::ostream& err, StreamInterrupter* interrupter,
                grpc::ChannelInterface* channel) {
  grpc::ClientContext context;  // no deadline: a watch runs until it is interrupted
  addCredentials(context, command);
  const InterrupterAttachment attachment(interrupter, &context);
  std::unique_ptr<grpc::ClientReaderInterface<v1::HealthEvent>> reader =
      stub.WatchHealth(&context, command.watch_request);

  WatchTable table(command.watch_request.since_revision() != 0);
  v1::HealthEvent event;
  bool reached = false;  // an event arrived: the server was there, whatever ends the stream
  while (reader->Read(&event)) {
    reached = true;
    if (command.output == OutputFormat::kJson) {
      if (!printJsonLine(event, out, err)) {
        context.TryCancel();
        reader->Finish();
        return kExitCallFailed;
      }
    } else {
      table.add(event, std::chrono::system_clock::now(), out);
    }
    // Each event is flushed as it comes: watch output is read line by line through pipes.
    out.flush();
    if (!out) {
      // The reader went away (a closed pipe with SIGPIPE ignored): nobody is listening.
      context.TryCancel();
      reader->Finish();
      err << kErrorPrefix << "cannot write the output\n";
      return kExitCallFailed;
    }
  }
  // Rows held for a snapshot that the end of the stream cut short.
  table.finish(out);
  out.flush();
  const grpc::Status status = reader->Finish();
  if (interrupter != nullptr && interrupter->interrupted()) return kExitSuccess;
  if (!status.ok()) return callFailed(command, status, err, reached ? nullptr : channel);
  return kExitSuccess;
}

}  // namespace

int runCommand(const CtlCommand& command, v1::Supervisor::StubInterface& stub, std::ostream& out,
               std::ostream& err, StreamInterrupter* interrupter, grpc::ChannelInterface* channel) {
  switch (command.kind) {
    case CtlCommand::Kind::kRegister:
      return registerEndpoint(command, stub, out, err, channel);
    case CtlCommand::Kind::kUpdate:
      return updateEndpoint(command, stub, out, err, channel);
    case CtlCommand::Kind::kUnregister:
      return unregisterEndpoint(command, stub, out, err, channel);
    case CtlCommand::Kind::kGet:
      return getEndpoint(command, stub, out, err, channel);
    case CtlCommand::Kind::kList:
      return listEndpoints(command, stub, out, err, channel);
    case CtlCommand::Kind::kWatch:
      return watchHealth(command, stub, out, err, interrupter, channel);
    case CtlCommand::Kind::kHistory:
      return getHistory(command, stub, out, err, channel);
    case CtlCommand::Kind::kProbe:
      return probeEndpoint(command, stub, out, err, channel);
    case CtlCommand::Kind::kHelp:
      out << usageText();
      return kExitSuccess;
  }
  return kExitUsage;
}

}  // namespace wsvisor::ctl

// Shoal's native addon: namespace entry and netlink, each call on a thread of its own.
#include <napi.h>

#include <array>
#include <tuple>

#include <functional>

#include "netlink.h"
#include "nft.h"
#include "sysops.h"

namespace {

class ListLinksWorker : public Napi::AsyncWorker {
 public:
  ListLinksWorker(Napi::Env env, std::string netnsPath)
      : Napi::AsyncWorker(env), netnsPath_(std::move(netnsPath)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    std::string error = shoal::ListLinksInNetns(netnsPath_, &links_);
    if (!error.empty()) SetError(error);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array result = Napi::Array::New(env, links_.size());
    for (size_t i = 0; i < links_.size(); i++) {
      const auto& link = links_[i];
      Napi::Object item = Napi::Object::New(env);
      item.Set("index", link.index);
      item.Set("name", link.name);
      item.Set("kind", link.kind);
      item.Set("mtu", link.mtu);
      item.Set("up", link.up);
      item.Set("mac", link.mac);
      item.Set("master", link.master);
      if (!link.vxlanLocal.empty()) item.Set("vxlanLocal", link.vxlanLocal);
      Napi::Array addresses = Napi::Array::New(env, link.addresses.size());
      for (size_t j = 0; j < link.addresses.size(); j++) addresses.Set(j, link.addresses[j]);
      item.Set("addresses", addresses);
      result.Set(i, item);
    }
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  std::string netnsPath_;
  Napi::Promise::Deferred deferred_;
  std::vector<shoal::LinkInfo> links_;
};

Napi::Value ListLinks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "listLinks(netnsPath: string): pass a namespace path, or \"\" for this one")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new ListLinksWorker(env, info[0].As<Napi::String>().Utf8Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

class ListNeighboursWorker : public Napi::AsyncWorker {
 public:
  ListNeighboursWorker(Napi::Env env, std::string netnsPath)
      : Napi::AsyncWorker(env), netnsPath_(std::move(netnsPath)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    std::string error = shoal::ListNeighboursInNetns(netnsPath_, &entries_);
    if (!error.empty()) SetError(error);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array result = Napi::Array::New(env, entries_.size());
    for (size_t i = 0; i < entries_.size(); i++) {
      const auto& entry = entries_[i];
      Napi::Object item = Napi::Object::New(env);
      item.Set("ifindex", entry.ifindex);
      item.Set("family", entry.family);
      item.Set("mac", entry.mac);
      item.Set("dst", entry.dst);
      item.Set("state", entry.state);
      item.Set("flags", entry.flags);
      result.Set(i, item);
    }
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  std::string netnsPath_;
  Napi::Promise::Deferred deferred_;
  std::vector<shoal::NeighbourInfo> entries_;
};

Napi::Value ListNeighbours(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "listNeighbours(netnsPath: string): pass a namespace path, or \"\" for this one").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new ListNeighboursWorker(env, info[0].As<Napi::String>().Utf8Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

class NftWorker : public Napi::AsyncWorker {
 public:
  NftWorker(Napi::Env env, std::vector<std::string> netnsPaths, std::string command, bool json)
      : Napi::AsyncWorker(env), netnsPaths_(std::move(netnsPaths)), command_(std::move(command)), json_(json), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    std::string error = shoal::NftInNetns(netnsPaths_, command_, json_, &results_);
    if (!error.empty()) SetError(error);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array result = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); i++) {
      Napi::Object item = Napi::Object::New(env);
      item.Set("output", results_[i].output);
      if (!results_[i].error.empty()) item.Set("error", results_[i].error);
      result.Set(i, item);
    }
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  std::vector<std::string> netnsPaths_;
  std::string command_;
  bool json_;
  Napi::Promise::Deferred deferred_;
  std::vector<shoal::NftResult> results_;
};

// nftInNetns(netnsPaths: string[], command: string, json: boolean): Promise<Array<{ output, error? }>>.
Napi::Value NftInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsString() || !info[2].IsBoolean()) {
    Napi::TypeError::New(env, "nftInNetns(netnsPaths: string[], command: string, json: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array paths = info[0].As<Napi::Array>();
  std::vector<std::string> netnsPaths;
  for (uint32_t i = 0; i < paths.Length(); i++) {
    Napi::Value path = paths.Get(i);
    if (!path.IsString()) {
      Napi::TypeError::New(env, "nftInNetns: each namespace is a path string").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    netnsPaths.push_back(path.As<Napi::String>().Utf8Value());
  }
  auto* worker = new NftWorker(env, std::move(netnsPaths), info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Boolean>().Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Runs one system operation off the JavaScript thread; resolves, or rejects with its error.
class OperationWorker : public Napi::AsyncWorker {
 public:
  OperationWorker(Napi::Env env, std::function<std::string()> operation)
      : Napi::AsyncWorker(env), operation_(std::move(operation)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string error = operation_();
    if (!error.empty()) SetError(error);
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  std::function<std::string()> operation_;
  Napi::Promise::Deferred deferred_;
};

// Wraps a function of N string arguments as a JavaScript function returning a promise.
template <size_t N, typename F>
Napi::Function StringOperation(Napi::Env env, const char* usage, F operation) {
  return Napi::Function::New(env, [usage, operation](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env env = info.Env();
    std::array<std::string, N> args;
    for (size_t i = 0; i < N; i++) {
      if (info.Length() <= i || !info[i].IsString()) {
        Napi::TypeError::New(env, usage).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      args[i] = info[i].As<Napi::String>().Utf8Value();
    }
    auto* worker = new OperationWorker(env, [operation, args]() { return std::apply(operation, args); });
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  });
}

// Opens a socket in a namespace off the JavaScript thread; resolves with its descriptor.
class SocketWorker : public Napi::AsyncWorker {
 public:
  SocketWorker(Napi::Env env, std::string netnsPath, bool tcp, std::string address, int port)
      : Napi::AsyncWorker(env), netnsPath_(std::move(netnsPath)), tcp_(tcp), address_(std::move(address)), port_(port),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string error = shoal::SocketInNetns(netnsPath_, tcp_, address_, port_, &fd_);
    if (!error.empty()) SetError(error);
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), fd_)); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  std::string netnsPath_;
  bool tcp_;
  std::string address_;
  int port_;
  int fd_ = -1;
  Napi::Promise::Deferred deferred_;
};

// socketInNetns(netnsPath, "udp" | "tcp", address, port): Promise<fd>.
Napi::Value SocketInNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString() || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "socketInNetns(netnsPath: string, kind: 'udp' | 'tcp', address: string, port: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string kind = info[1].As<Napi::String>().Utf8Value();
  if (kind != "udp" && kind != "tcp") {
    Napi::TypeError::New(env, "socketInNetns: kind is 'udp' or 'tcp'").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new SocketWorker(env, info[0].As<Napi::String>().Utf8Value(), kind == "tcp", info[2].As<Napi::String>().Utf8Value(),
                                  info[3].As<Napi::Number>().Int32Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// spawnDetached(argv: string[], stdoutFd, stderrFd, cwd): pid. Synchronous: posix_spawn
// returns as soon as the child has exec'd, in well under a millisecond.
Napi::Value SpawnDetached(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsArray() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsString()) {
    Napi::TypeError::New(env, "spawnDetached(argv: string[], stdoutFd: number, stderrFd: number, cwd: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array array = info[0].As<Napi::Array>();
  std::vector<std::string> argv;
  for (uint32_t i = 0; i < array.Length(); i++) argv.push_back(array.Get(i).As<Napi::String>().Utf8Value());
  if (argv.empty()) {
    Napi::TypeError::New(env, "spawnDetached: argv is empty").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int pid = 0;
  std::string error = shoal::SpawnDetached(argv, info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value(),
                                           info[3].As<Napi::String>().Utf8Value(), &pid);
  if (!error.empty()) {
    Napi::Error::New(env, error).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, pid);
}

// reap(pid): boolean. waitpid for that one child, without blocking; never for any other pid,
// so the exits Node's own child processes wait for are left to it.
Napi::Value Reap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "reap(pid: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Boolean::New(env, shoal::Reap(info[0].As<Napi::Number>().Int32Value()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("spawnDetached", Napi::Function::New(env, SpawnDetached));
  exports.Set("reap", Napi::Function::New(env, Reap));
  exports.Set("listLinks", Napi::Function::New(env, ListLinks));
  exports.Set("socketInNetns", Napi::Function::New(env, SocketInNetns));
  exports.Set("nftInNetns", Napi::Function::New(env, NftInNetns));
  exports.Set("listNeighbours", Napi::Function::New(env, ListNeighbours));
  exports.Set("createNetns", StringOperation<1>(env, "createNetns(path)", shoal::CreateNetns));
  exports.Set("deleteNetns", StringOperation<1>(env, "deleteNetns(path)", shoal::DeleteNetns));
  exports.Set("writeInNetns", StringOperation<3>(env, "writeInNetns(netnsPath, file, value)", shoal::WriteInNetns));
  exports.Set("mountOverlay", StringOperation<4>(env, "mountOverlay(lower, upper, work, target)", shoal::MountOverlay));
  exports.Set("unmount", StringOperation<1>(env, "unmount(target)", shoal::Unmount));
  exports.Set("mkfifo", StringOperation<1>(env, "mkfifo(path)", shoal::MakeFifo));
  return exports;
}

}  // namespace

NODE_API_MODULE(shoal_native, Init)

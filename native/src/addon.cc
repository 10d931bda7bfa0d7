// Shoal's native addon: namespace entry and netlink, each call on a thread of its own.
#include <napi.h>

#include <array>
#include <tuple>

#include <functional>

#include "console.h"
#include "netlink.h"
#include "nft.h"
#include "sysops.h"

namespace {

// Fills a list off the JavaScript thread (`work` returns an error, or ""), then resolves with
// each item as `convert` makes it a JavaScript value.
template <typename Item>
class ListWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<std::string(std::vector<Item>*)>;
  using Convert = std::function<Napi::Value(Napi::Env, const Item&)>;

  ListWorker(Napi::Env env, Work work, Convert convert)
      : Napi::AsyncWorker(env), work_(std::move(work)), convert_(std::move(convert)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    std::string error = work_(&items_);
    if (!error.empty()) SetError(error);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array result = Napi::Array::New(env, items_.size());
    for (size_t i = 0; i < items_.size(); i++) result.Set(i, convert_(env, items_[i]));
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Work work_;
  Convert convert_;
  Napi::Promise::Deferred deferred_;
  std::vector<Item> items_;
};

template <typename Item>
Napi::Value QueueList(Napi::Env env, typename ListWorker<Item>::Work work, typename ListWorker<Item>::Convert convert) {
  auto* worker = new ListWorker<Item>(env, std::move(work), std::move(convert));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value LinkValue(Napi::Env env, const shoal::LinkInfo& link) {
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
  return item;
}

Napi::Value NeighbourValue(Napi::Env env, const shoal::NeighbourInfo& entry) {
  Napi::Object item = Napi::Object::New(env);
  item.Set("ifindex", entry.ifindex);
  item.Set("family", entry.family);
  item.Set("mac", entry.mac);
  item.Set("dst", entry.dst);
  item.Set("state", entry.state);
  item.Set("flags", entry.flags);
  return item;
}

Napi::Value NftValue(Napi::Env env, const shoal::NftResult& result) {
  Napi::Object item = Napi::Object::New(env);
  item.Set("output", result.output);
  if (!result.error.empty()) item.Set("error", result.error);
  return item;
}

// listLinks(netnsPath) and listNeighbours(netnsPath): "" for this namespace. One namespace in,
// a list out: `list` fills it there, `convert` makes each item a JavaScript value.
template <typename Item>
Napi::Value ListInNetns(const Napi::CallbackInfo& info, const char* name, std::string (*list)(const std::string&, std::vector<Item>*),
                        Napi::Value (*convert)(Napi::Env, const Item&)) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, std::string(name) + "(netnsPath: string): pass a namespace path, or \"\" for this one").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return QueueList<Item>(env, [path, list](std::vector<Item>* out) { return list(path, out); }, convert);
}

Napi::Value ListLinks(const Napi::CallbackInfo& info) { return ListInNetns<shoal::LinkInfo>(info, "listLinks", shoal::ListLinksInNetns, LinkValue); }

Napi::Value ListNeighbours(const Napi::CallbackInfo& info) {
  return ListInNetns<shoal::NeighbourInfo>(info, "listNeighbours", shoal::ListNeighboursInNetns, NeighbourValue);
}

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
  std::string command = info[1].As<Napi::String>().Utf8Value();
  bool json = info[2].As<Napi::Boolean>().Value();
  return QueueList<shoal::NftResult>(
      env, [netnsPaths, command, json](std::vector<shoal::NftResult>* out) { return shoal::NftInNetns(netnsPaths, command, json, out); }, NftValue);
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

// A descriptor received off the JavaScript thread (runc's terminal): resolves with it.
class FdWorker : public Napi::AsyncWorker {
 public:
  FdWorker(Napi::Env env, std::function<std::string(int*)> receive)
      : Napi::AsyncWorker(env), receive_(std::move(receive)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string error = receive_(&fd_);
    if (!error.empty()) SetError(error);
  }
  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), fd_)); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  std::function<std::string(int*)> receive_;
  int fd_ = -1;
  Napi::Promise::Deferred deferred_;
};

Napi::Value QueueFd(Napi::Env env, std::function<std::string(int*)> receive) {
  auto* worker = new FdWorker(env, std::move(receive));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// fetchFd(dir, name, timeoutMs): Promise<fd>.
Napi::Value FetchFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "fetchFd(dir: string, name: string, timeoutMs: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  int timeoutMs = info[2].As<Napi::Number>().Int32Value();
  return QueueFd(env, [dir, name, timeoutMs](int* fd) { return shoal::FetchFd(dir, name, timeoutMs, fd); });
}

// setWindowSize(fd, rows, cols): undefined; throws on failure.
Napi::Value SetWindowSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "setWindowSize(fd: number, rows: number, cols: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string error = shoal::SetWindowSize(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value());
  if (!error.empty()) Napi::Error::New(env, error).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("spawnDetached", Napi::Function::New(env, SpawnDetached));
  exports.Set("reap", Napi::Function::New(env, Reap));
  exports.Set("fetchFd", Napi::Function::New(env, FetchFd));
  exports.Set("setWindowSize", Napi::Function::New(env, SetWindowSize));
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

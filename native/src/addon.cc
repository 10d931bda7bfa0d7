// Shoal's native addon: namespace entry and netlink, each call on a thread of its own.
#include <napi.h>

#include "netlink.h"

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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("listLinks", Napi::Function::New(env, ListLinks));
  return exports;
}

}  // namespace

NODE_API_MODULE(shoal_native, Init)

{
  "targets": [
    {
      "target_name": "shoal_native",
      "sources": ["src/addon.cc", "src/console.cc", "src/netlink.cc", "src/nft.cc", "src/sysops.cc"],
      "libraries": ["-ldl"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}

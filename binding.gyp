{
  "variables": {
    "with_dnnl%": 1
  },
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
    "defines": ["NAPI_VERSION=8"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"]
  },
  "targets": [
    {
      "target_name": "proggan_shm",
      "sources": ["src/native/shm-addon.cc", "src/native/shm.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-fvisibility=hidden"]
    }
  ],
  "conditions": [
    ["with_dnnl==1", {
      "targets": [
        {
          "target_name": "proggan_native",
          "sources": ["src/native/addon.cc", "src/native/elementwise.cc"],
          "cflags_cc": ["-std=c++17", "-O3", "-march=x86-64-v2", "-fopenmp", "-fexceptions", "-fvisibility=hidden", "-fno-math-errno"],
          "libraries": ["-ldnnl", "-fopenmp"]
        }
      ]
    }]
  ]
}

{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": [
        "native/src/binding.c",
        "native/src/tun.c",
        "native/src/udp.c",
        "native/src/csum.c",
        "native/src/gso.c",
        "native/src/gro.c",
        "native/src/notify.c",
        "native/src/lock.c"
      ],
      "cflags_c": [
        "-std=gnu11",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-fstack-protector-strong",
        "-D_FORTIFY_SOURCE=2"
      ],
      "ldflags": [
        "-Wl,-z,relro",
        "-Wl,-z,now"
      ]
    },
    {
      "target_name": "weft-cni",
      "type": "executable",
      "sources": [
        "native/cni/main.c",
        "native/cni/commands.c",
        "native/cni/netconf.c",
        "native/cni/subnet_env.c",
        "native/cni/delegate.c",
        "native/cni/record.c",
        "native/cni/invoke.c",
        "native/cni/error.c",
        "native/cni/version.c"
      ],
      "cflags_c": [
        "-std=gnu11",
        "-O2",
        "-Wall",
        "-Wextra",
        "-fstack-protector-strong",
        "-D_FORTIFY_SOURCE=2"
      ],
      "libraries": [
        "-ljansson"
      ],
      "ldflags": [
        "-Wl,-z,relro",
        "-Wl,-z,now"
      ]
    },
    {
      "target_name": "weft_bpf",
      "sources": [
        "native/bpf/binding.c",
        "native/bpf/loader.c"
      ],
      "cflags_c": [
        "-std=gnu11",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-fstack-protector-strong",
        "-D_FORTIFY_SOURCE=2"
      ],
      "libraries": [
        "-lbpf"
      ],
      "ldflags": [
        "-Wl,-z,relro",
        "-Wl,-z,now"
      ],
      "dependencies": [
        "weft_fastpath_object"
      ]
    },
    {
      "target_name": "weft_fastpath_object",
      "type": "none",
      "actions": [
        {
          "action_name": "compile_bpf",
          "inputs": [
            "native/bpf/fastpath.bpf.c",
            "native/bpf/fastpath.h",
            "native/bpf/build-object.sh"
          ],
          "outputs": [
            "<(PRODUCT_DIR)/weft_fastpath.bpf.o"
          ],
          "action": [
            "sh",
            "native/bpf/build-object.sh",
            "native/bpf/fastpath.bpf.c",
            "<(PRODUCT_DIR)/weft_fastpath.bpf.o"
          ]
        }
      ]
    }
  ]
}

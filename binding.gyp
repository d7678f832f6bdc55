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
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"]
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
      "libraries": ["-ljansson"],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"]
    }
  ]
}

"""The default seccomp profile of every container: allow by default, deny the dangerous syscalls.

Why a deny list and not Docker's allow list: Docker's default profile allows ~350 named syscalls and fails
everything else, so each new kernel/libc syscall breaks some runtime (Java, Node, Go) until the list
catches up. Our containers already run with *no capabilities*, as a non-root user, with
``noNewPrivileges``, so most privileged syscalls fail anyway; the profile's job is to close the ones that
remain reachable without privileges or that widen the kernel's attack surface, the same set Docker's
profile closes for a container without capabilities:

- kernel keyrings (``keyctl``, ``add_key``, ``request_key``): not namespaced;
- mounting and namespaces (``mount``, ``umount2``, the new mount API, ``pivot_root``, ``chroot``,
  ``unshare``, ``setns``, and ``clone`` with ``CLONE_NEWUSER``): user namespaces give an unprivileged
  process "root" in a new namespace, the start of many kernel exploits;
- ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``: large attack surfaces, exploit helpers;
- modules and kexec, ``reboot``, ``swapon``/``swapoff``, ``acct``, ``quotactl``, ``syslog``;
- the clock (``clock_settime``, ``settimeofday``, ``adjtimex``, ``clock_adjtime``, ``stime``): not namespaced;
- ``ptrace``, ``process_vm_readv``/``writev``, ``kcmp``: other processes' memory (Docker needs
  ``CAP_SYS_PTRACE`` for them);
- ``open_by_handle_at`` (the "shocker" container escape), ``name_to_handle_at``;
- ``iopl``, ``ioperm``, ``vm86``, ``lookup_dcookie``, ``uselib``, ``nfsservctl``, ``_sysctl``, moving
  other processes' pages, ``fanotify_init``, ``vhangup``;
- ``personality`` with flags that weaken ASLR or make data executable (``ADDR_NO_RANDOMIZE``,
  ``READ_IMPLIES_EXEC``, …): the plain values and the query value ``0xffffffff`` stay allowed.

Denied calls fail with ``EPERM``, except ``clone3`` which fails with ``ENOSYS``: its flags live in memory
where seccomp cannot look, and glibc falls back to ``clone`` (whose flags are checked) on ``ENOSYS``.

Architectures: the host's native one and its compat ABIs (x86_64 + x86 + x32, aarch64 + arm), so a 32-bit
binary is filtered too instead of slipping past; any other ABI is refused by runc's bad-arch action.
Names unknown to the running libseccomp are skipped by runc (older kernels simply lack them).
"""

from __future__ import annotations

import platform
from typing import Any

EPERM = 1
ENOSYS = 38

DENIED_SYSCALLS = (
    # keyrings
    "keyctl",
    "add_key",
    "request_key",
    # mounts, roots and namespaces
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    # kernel attack surface
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fanotify_init",
    # the machine
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "vhangup",
    "nfsservctl",
    "_sysctl",
    "sysfs",
    "ustat",
    "uselib",
    # the clock
    "clock_settime",
    "clock_settime64",
    "settimeofday",
    "stime",
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    # other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # file handles ("shocker")
    "open_by_handle_at",
    "name_to_handle_at",
    # hardware and legacy
    "iopl",
    "ioperm",
    "vm86",
    "vm86old",
    "lookup_dcookie",
    # moving other processes' pages between NUMA nodes (Docker: CAP_SYS_NICE)
    "migrate_pages",
    "move_pages",
)

CLONE_NEWUSER = 0x10000000
# personality(2) flags that weaken the address space: denied when set (see linux/personality.h)
UNSAFE_PERSONALITY_FLAGS = (
    0x0040000,  # ADDR_NO_RANDOMIZE
    0x0100000,  # MMAP_PAGE_ZERO
    0x0200000,  # ADDR_COMPAT_LAYOUT
    0x0400000,  # READ_IMPLIES_EXEC
    0x0800000,  # ADDR_LIMIT_32BIT
    0x8000000,  # ADDR_LIMIT_3GB
)
# the query value 0xffffffff has bit 31 set, no real personality does: requiring it clear lets queries through
_PERSONALITY_QUERY_BIT = 0x80000000

ARCHITECTURES = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
}


def _deny_when_masked(name: str, index: int, mask: int, value: int, errno: int = EPERM) -> dict[str, Any]:
    """A rule that fails ``name`` when ``args[index] & mask == value``."""
    condition = {"index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}
    return {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno, "args": [condition]}


def default_profile(machine: str | None = None) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object for ``machine`` (default: this host's ``platform.machine()``)."""
    arch = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    architectures = ARCHITECTURES.get(arch)
    if architectures is None:
        raise ValueError(f"no seccomp profile for architecture {arch!r} (have {', '.join(ARCHITECTURES)})")
    # clone's flags are its first argument on x86 and arm (s390 differs; not supported here)
    syscalls = [
        {"names": list(DENIED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
        _deny_when_masked("clone", 0, CLONE_NEWUSER, CLONE_NEWUSER),
    ]
    syscalls += [
        _deny_when_masked("personality", 0, flag | _PERSONALITY_QUERY_BIT, flag)
        for flag in UNSAFE_PERSONALITY_FLAGS
    ]
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": list(architectures), "syscalls": syscalls}

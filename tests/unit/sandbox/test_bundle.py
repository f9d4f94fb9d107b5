"""render_config (pure): every security-relevant field of the runc config.json, and bad specs refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from yunzhou.domain.errors import UserError
from yunzhou.sandbox import ContainerSpec, Mount, NetworkAttachment, render_config, write_bundle
from yunzhou.sandbox.bundle import MASKED_PATHS, READONLY_PATHS, render_hosts
from yunzhou.sandbox.seccomp import DENIED_SYSCALLS, default_profile

ROOTFS = Path("/var/lib/yunzhou-instances/x/bundles/web-1/rootfs")


def spec(**changes: Any) -> ContainerSpec:
    base: dict[str, Any] = {
        "id": "web-1",
        "rootfs": ROOTFS,
        "args": ("python3", "-m", "app"),
        "env": {"PORT": "8000", "SECRET": "s3cret"},
        "uid": 2_000_000_001,
        "gid": 2_000_000_001,
    }
    return ContainerSpec(**(base | changes))


def mount_at(config: dict[str, Any], target: str) -> dict[str, Any]:
    [found] = [m for m in config["mounts"] if m["destination"] == target]
    return found


def test_process_runs_as_the_given_user_with_no_supplementary_groups() -> None:
    process = render_config(spec())["process"]
    assert process["user"] == {"uid": 2_000_000_001, "gid": 2_000_000_001, "additionalGids": []}
    assert process["args"] == ["python3", "-m", "app"]
    assert process["cwd"] == "/"
    assert process["terminal"] is False


def test_no_capabilities_in_any_set_and_no_new_privileges() -> None:
    process = render_config(spec())["process"]
    assert process["capabilities"] == {
        "bounding": [],
        "effective": [],
        "inheritable": [],
        "permitted": [],
        "ambient": [],
    }
    assert process["noNewPrivileges"] is True


def test_environment_is_exactly_the_given_one_plus_a_default_path() -> None:
    env = render_config(spec())["process"]["env"]
    assert env[:2] == ["PORT=8000", "SECRET=s3cret"]
    assert env[2].startswith("PATH=/usr/local/sbin:")
    assert render_config(spec(env={"PATH": "/app/bin"}))["process"]["env"] == ["PATH=/app/bin"]


def test_secret_values_are_not_in_the_spec_repr() -> None:
    assert "s3cret" not in repr(spec())


def test_root_is_read_only_by_default() -> None:
    assert render_config(spec())["root"] == {"path": str(ROOTFS), "readonly": True}


def test_own_namespaces_and_a_fresh_empty_network_for_none() -> None:
    namespaces = render_config(spec())["linux"]["namespaces"]
    assert sorted(n["type"] for n in namespaces) == ["ipc", "mount", "network", "pid", "uts"]
    assert {"type": "network"} in namespaces  # no path: a new, empty netns (lo only)


def test_an_attachment_joins_its_netns() -> None:
    attachment = NetworkAttachment(Path("/run/netns/yz-web-1"), "10.213.0.7", "10.213.0.1")
    namespaces = render_config(spec(network=attachment))["linux"]["namespaces"]
    assert {"type": "network", "path": "/run/netns/yz-web-1"} in namespaces
    assert len(namespaces) == 5


def test_host_network_shares_the_hosts_netns_but_keeps_the_others() -> None:
    namespaces = render_config(spec(network="host"))["linux"]["namespaces"]
    assert sorted(n["type"] for n in namespaces) == ["ipc", "mount", "pid", "uts"]


def test_tmp_is_a_size_limited_tmpfs_without_suid_or_devices() -> None:
    tmp = mount_at(render_config(spec(tmp_size_bytes=1 << 20)), "/tmp")
    assert tmp["type"] == "tmpfs"
    assert {"nosuid", "nodev", "size=1048576"} <= set(tmp["options"])


def test_system_mounts_as_runc_default_and_sys_read_only_and_no_cgroup_tree() -> None:
    config = render_config(spec())
    assert [m["destination"] for m in config["mounts"][:6]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ]
    assert "ro" in mount_at(config, "/sys")["options"]
    assert {"nosuid", "noexec", "nodev"} <= set(mount_at(config, "/dev/shm")["options"])
    assert "/sys/fs/cgroup" not in [m["destination"] for m in config["mounts"]]


def test_masked_and_readonly_paths_cover_runcs_defaults() -> None:
    linux = render_config(spec())["linux"]
    runc_masked = {
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
    }
    assert runc_masked <= set(linux["maskedPaths"]) == set(MASKED_PATHS)
    assert (
        set(linux["readonlyPaths"])
        == set(READONLY_PATHS)
        == {
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        }
    )


def test_limits_memory_without_swap_cpu_quota_pids_nofile_and_devices() -> None:
    config = render_config(
        spec(memory_limit_bytes=256 << 20, cpu_limit_millis=250, pids_limit=64, nofile=2048)
    )
    resources = config["linux"]["resources"]
    assert resources["memory"] == {"limit": 256 << 20, "swap": 256 << 20}
    assert resources["cpu"] == {"quota": 25_000, "period": 100_000}
    assert resources["pids"] == {"limit": 64}
    assert resources["devices"] == [{"allow": False, "access": "rwm"}]
    assert config["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 2048}]


def test_tiny_cpu_limits_get_the_kernels_minimum_quota() -> None:
    assert render_config(spec(cpu_limit_millis=10))["linux"]["resources"]["cpu"]["quota"] == 1_000


def test_no_limits_given_means_only_pids_and_devices() -> None:
    resources = render_config(spec())["linux"]["resources"]
    assert set(resources) == {"devices", "pids"}


def test_cgroups_path_and_hostname() -> None:
    config = render_config(spec(cgroups_path="/yunzhou/web-1", hostname="web"))
    assert config["linux"]["cgroupsPath"] == "/yunzhou/web-1"
    assert config["hostname"] == "web"
    assert render_config(spec())["hostname"] == "web-1"


def test_default_seccomp_profile_is_applied_and_can_be_switched_off() -> None:
    assert render_config(spec())["linux"]["seccomp"] == default_profile()
    assert "seccomp" not in render_config(spec(seccomp=False))["linux"]


def test_seccomp_profile_denies_the_dangerous_syscalls_with_eperm() -> None:
    profile = default_profile("x86_64")
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert default_profile("aarch64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    [deny] = [r for r in profile["syscalls"] if r["names"] == list(DENIED_SYSCALLS)]
    assert (deny["action"], deny["errnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    must = {"keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root", "unshare", "setns", "bpf"}
    must |= {"perf_event_open", "userfaultfd", "kexec_load", "kexec_file_load", "init_module"}
    must |= {"finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at", "ptrace", "reboot"}
    must |= {"swapon", "swapoff", "acct", "quotactl", "clock_settime", "settimeofday", "adjtimex", "iopl"}
    must |= {"ioperm", "lookup_dcookie", "vm86", "syslog"}
    assert must <= set(DENIED_SYSCALLS)


def test_seccomp_denies_user_namespaces_via_clone_and_unsafe_personality_flags() -> None:
    rules = default_profile("x86_64")["syscalls"]
    [clone] = [r for r in rules if r["names"] == ["clone"]]
    assert clone["args"] == [
        {"index": 0, "value": 0x10000000, "valueTwo": 0x10000000, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    [clone3] = [r for r in rules if r["names"] == ["clone3"]]
    assert clone3["errnoRet"] == 38  # ENOSYS: glibc falls back to clone, whose flags are checked
    personality = [r["args"][0] for r in rules if r["names"] == ["personality"]]
    no_randomize = {"index": 0, "value": 0x80040000, "valueTwo": 0x40000, "op": "SCMP_CMP_MASKED_EQ"}
    assert no_randomize in personality
    for cond in personality:  # the query value 0xffffffff and plain PER_LINUX(32) are never matched
        assert 0xFFFFFFFF & cond["value"] != cond["valueTwo"]
        assert 0x0 & cond["value"] != cond["valueTwo"]
        assert 0x8 & cond["value"] != cond["valueTwo"]


def test_seccomp_refuses_an_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="s390x"):
        default_profile("s390x")


def test_hosts_and_resolv_conf_are_read_only_binds_from_the_bundle() -> None:
    config = render_config(spec(resolv_conf="nameserver 10.213.0.1\n"))
    hosts, resolv = mount_at(config, "/etc/hosts"), mount_at(config, "/etc/resolv.conf")
    for m, source in ((hosts, "hosts"), (resolv, "resolv.conf")):
        assert (m["type"], m["source"]) == ("bind", source)  # relative: runc resolves it in the bundle
        assert {"rbind", "ro", "nosuid", "nodev"} <= set(m["options"])
    assert "/etc/resolv.conf" not in [m["destination"] for m in render_config(spec())["mounts"]]


def test_extra_mounts_bind_read_only_unless_told_and_tmpfs_sized() -> None:
    mounts = (
        Mount("/app/config.yaml", Path("/srv/files/config.yaml")),
        Mount("/data", Path("/srv/volumes/data"), readonly=False),
        Mount("/scratch", kind="tmpfs", size=1 << 20),
    )
    config = render_config(spec(mounts=mounts))
    assert mount_at(config, "/app/config.yaml")["source"] == "/srv/files/config.yaml"
    assert "ro" in mount_at(config, "/app/config.yaml")["options"]
    assert {"rw", "nosuid", "nodev"} <= set(mount_at(config, "/data")["options"])
    assert {"nosuid", "nodev", "size=1048576"} <= set(mount_at(config, "/scratch")["options"])


def test_hosts_file_names_the_container_and_the_given_names() -> None:
    attachment = NetworkAttachment(Path("/run/netns/yz-web-1"), "10.213.0.7", "10.213.0.1")
    text = render_hosts(spec(network=attachment, hosts={"orders.shop": "10.213.0.1"}))
    assert "127.0.0.1\tlocalhost\n" in text
    assert "10.213.0.7\tweb-1\n" in text
    assert text.endswith("10.213.0.1\torders.shop\n")


def test_write_bundle_writes_config_hosts_and_resolv_conf(tmp_path: Path) -> None:
    bundle = write_bundle(spec(resolv_conf="nameserver 1.1.1.1\n"), tmp_path / "b")
    assert json.loads((bundle / "config.json").read_text()) == render_config(
        spec(resolv_conf="nameserver 1.1.1.1\n")
    )
    assert (bundle / "config.json").stat().st_mode & 0o777 == 0o600  # holds the environment
    assert (bundle / "hosts").read_text().startswith("127.0.0.1\tlocalhost")
    assert (bundle / "resolv.conf").read_text() == "nameserver 1.1.1.1\n"
    assert (bundle / "hosts").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "../x"}, "id"),
        ({"rootfs": Path("rootfs")}, "rootfs"),
        ({"args": ()}, "args"),
        ({"env": {"A=B": "x"}}, "env.A=B"),
        ({"cwd": "app"}, "cwd"),
        ({"uid": -1}, "uid"),
        ({"gid": 2**32}, "gid"),
        ({"hostname": "Not_A_Label"}, "hostname"),
        ({"memory_limit_bytes": 1024}, "memory_limit_bytes"),
        ({"cpu_limit_millis": 1}, "cpu_limit_millis"),
        ({"pids_limit": 0}, "pids_limit"),
        ({"cgroups_path": "/yunzhou/../../escape"}, "cgroups_path"),
        ({"cgroups_path": "/"}, "cgroups_path"),
        ({"hosts": {"a b": "10.0.0.1"}}, "hosts.a b"),
        ({"mounts": (Mount("/proc", Path("/x")),)}, "mounts[0].target"),
        ({"mounts": (Mount("/tmp", Path("/x")),)}, "mounts[0].target"),
        ({"mounts": (Mount("/a/../etc/hosts", Path("/x")),)}, "mounts[0].target"),
        ({"mounts": (Mount("relative", Path("/x")),)}, "mounts[0].target"),
        ({"mounts": (Mount("/data", Path("/x")), Mount("/data", Path("/y")))}, "mounts[1].target"),
        ({"mounts": (Mount("/data", None),)}, "mounts[0].source"),
        ({"mounts": (Mount("/data", Path("rel")),)}, "mounts[0].source"),
        ({"mounts": (Mount("/data", kind="tmpfs"),)}, "mounts[0].size"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(UserError) as caught:
        render_config(spec(**changes))
    assert caught.value.problems[0].path == field
